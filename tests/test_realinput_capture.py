"""Face and voice from the console: per-stream consent ticked by the experimenter's clicks, the
devices opened only for consented streams, and the participant told while they record.

The real app on Xvfb under openbox (``tests/realinput``) with the camera of
``tests/test_capture.py`` (FFmpeg's test source played as if live) and its ALSA microphone (a
FIFO fed with a 440 Hz tone at real time, through a temporary HOME's ``.asoundrc``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import test_capture as capture
from realinput.recorded import closed_session

pytestmark = [
    pytest.mark.gui,
    pytest.mark.timeout(120),
    pytest.mark.skipif(not Path(capture.FFMPEG).exists(), reason="needs ffmpeg"),
]

# The FFmpeg test video and the FIFO-fed microphone's HOME (module fixtures of test_capture).
video = capture.video
mic_home = capture.mic_home


def _checked(app, name: str) -> bool:
    w = app.find(name)
    return bool(w and w["checked"])


def _tick(app, name: str) -> None:
    assert not _checked(app, name), f"{name!r} must start unticked"
    app.click(name)
    app.wait_until(lambda: _checked(app, name), 5, what=f"{name!r} ticked")


def _record(app, *, seconds: float) -> dict:
    """Click Record, wait until the file is being written, record ``seconds``; the state then."""
    app.click("Record")
    if app.answer("Yes", timeout=1.0):  # the pseudonym already has a session: go on
        app.note("confirmed another session")
    app.wait_until(lambda: app.state()["recording"], 20, what="recording")
    time.sleep(seconds)
    return app.state()


def test_consented_streams_are_recorded_and_the_participant_is_told(real_app, video, mic_home):
    camera = f"file:{video}?loop=true"
    with capture.tone(mic_home):
        app = real_app(
            participant="P042",
            protocol="none",
            extra_args=("--camera", camera, "--microphone", "default"),
            env={"HOME": str(mic_home)},
        )
        app.connected()
        assert app.state()["capture"]["indicator"] == ""

        # Both streams consented to: camera and microphone recorded, the participant told.
        _tick(app, "Participant consents to video")
        _tick(app, "Participant consents to audio")
        st = _record(app, seconds=0.5)
        shown = app.wait_until(
            lambda: app.state()["capture"]["indicator"], 5, what="the participant's indicator"
        )
        assert "Camera on" in shown and "Microphone on" in shown, shown
        assert st["capture"]["camera_open"] and st["capture"]["microphone_open"]
        time.sleep(2.5)
        live = app.state()["capture"]
        assert live["indicator"] == shown  # on for as long as they record
        # the console's live preview: about 10 new frames a second (the camera gives 30)
        assert live["preview_frames"] >= 15, live
        level = float(live["level"].split()[0])  # "-14 dBFS": the tone at 0.3 of full scale
        assert -20 <= level <= -8, live
        first = app.stop_recording_and_wait()
        assert app.state()["capture"]["indicator"] == "", "the indicator stays after recording"

        # The next session asks again; the participant agrees to audio only.
        assert not _checked(app, "Participant consents to video")
        assert not _checked(app, "Participant consents to audio")
        app.click("Participant pseudonym")
        app.type_text("P042")
        _tick(app, "Participant consents to audio")
        st = _record(app, seconds=1.5)
        assert not st["capture"]["camera_open"], "a camera without consent was opened"
        assert st["capture"]["indicator"] == "● Microphone on"
        assert "no video (no consent)" in (app.text("Status bar") or "")
        second = app.stop_recording_and_wait()

    s = closed_session(first)
    assert bool(s.attrs["consent_video"]) and bool(s.attrs["consent_audio"])
    v = s.videos["video"]
    assert (v.width, v.height) == (320, 240)
    assert v.n_frames >= 2.5 * capture.FPS
    np.testing.assert_allclose(np.diff(v.timestamps), 1 / capture.FPS, atol=1e-6)
    assert v.jpeg(0)[:2] == b"\xff\xd8"
    a = s.streams["audio"]
    assert a.info.stream_type == "Audio"
    span = a.timestamps[-1] - a.timestamps[0]
    assert span > 2.5 and a.n_samples == pytest.approx(capture.RATE * span, rel=0.02)
    x = a.data[capture.RATE // 4 :, 0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.fft.rfftfreq(len(x), 1 / capture.RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(capture.TONE_HZ, abs=2)
    eeg = s.eeg.timestamps
    assert abs(v.timestamps[0] - eeg[0]) < 0.5 and abs(a.timestamps[0] - eeg[0]) < 0.5

    s2 = closed_session(second)
    assert not bool(s2.attrs["consent_video"]) and bool(s2.attrs["consent_audio"])
    assert s2.videos == {}, "video recorded without consent"
    assert s2.streams["audio"].n_samples > capture.RATE


def test_a_camera_that_cannot_be_opened_refuses_the_recording_in_one_message(real_app):
    """A consented camera that is not there: one message, no file; the console stays usable."""
    app = real_app(participant="P042", protocol="none", extra_args=("--camera", "/dev/video97"))
    app.connected()
    _tick(app, "Participant consents to video")
    app.click("Record")
    modal = app.wait_until(lambda: app.state()["modal"], 15, what="the message")
    assert "no camera '/dev/video97'" in modal["text"] and "Nothing was recorded" in modal["text"]
    app.answer("OK")
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the message closed")
    st = app.state()
    assert not st["recording"] and st["capture"]["indicator"] == ""
    assert not list(app.out_dir.glob("**/*.h5")), "a file was created"
    assert _checked(app, "Participant consents to video")  # the choice stays for a retry
    app.wait_until(lambda: app.find("Record")["enabled"], 5, what="Record usable again")


NARRATION = """\
version: 1
name: narrate-rig
capture: {camera: [narration], microphone: [narration]}
memories: [{id: m1, cue: A summer by the lake}]
phases:
  - {id: cue, kind: cue, memory: m1, duration: 1}
  - {id: tell, kind: narration, memory: m1, max_duration: 60}
"""


def test_narration_is_started_and_ended_by_the_participants_key(
    real_app, video, mic_home, tmp_path
):
    proto = tmp_path / "narrate.yaml"
    proto.write_text(NARRATION)
    with capture.tone(mic_home):
        app = real_app(
            participant="P042",
            protocol=str(proto),
            time_scale=1.0,
            extra_args=("--camera", f"file:{video}?loop=true", "--microphone", "default"),
            env={"HOME": str(mic_home)},
        )
        app.connected()
        _tick(app, "Participant consents to video")
        _tick(app, "Participant consents to audio")
        _record(app, seconds=0.2)
        app.click("Start protocol")
        app.wait_phase("narration")
        shown = app.text("Phase text", window="participant display") or ""
        assert "A summer by the lake" in shown and "when you begin to speak" in shown, shown
        assert app.state()["engine"]["narrating"] is False
        app.click_window("participant display")
        start = app.press("space")
        app.wait_until(lambda: app.state()["engine"]["narrating"], 5, what="narrating")
        shown = app.text("Phase text", window="participant display") or ""
        assert "Speaking" in shown and "when you have finished" in shown, shown
        time.sleep(2.5)
        assert app.state()["engine"]["kind"] == "narration", "the phase ended before the key"
        stop = app.press("space")
        app.wait_until(lambda: app.state()["engine"]["done"], 10, what="the protocol's end")
        s = closed_session(app.stop_recording_and_wait())

    (began,) = s.events_where(source="participant", label="narration_start")
    (ended,) = s.events_where(source="participant", label="narration_end")
    assert start.check("key_down", began.timestamp) == ""
    assert stop.check("key_down", ended.timestamp) == ""
    info = json.loads(ended.value)
    assert info["memory"] == "m1" and info["reason"] == "key"
    assert info["seconds"] == pytest.approx(stop.down - start.down, abs=0.01)
    # The voice and the face of the whole narration are in the file.
    a = s.streams["audio"]
    v = s.videos["video"]
    for ts in (a.timestamps, v.timestamps):
        assert ts[0] <= began.timestamp + 0.1 and ts[-1] >= ended.timestamp - 0.6
    during = (a.timestamps >= began.timestamp) & (a.timestamps <= ended.timestamp)
    assert np.count_nonzero(during) == pytest.approx(
        capture.RATE * (ended.timestamp - began.timestamp), rel=0.03
    )


def test_devices_are_listed_and_chosen_in_the_console(real_app, video, mic_home):
    # The experimenter picks the microphone from the devices the console found (not typed),
    # a video file as the camera and a frame size, all with mouse and keyboard.
    with capture.tone(mic_home):
        app = real_app(participant="P042", protocol="none", env={"HOME": str(mic_home)})
        app.connected()
        found = app.wait_until(
            lambda: "found" in (app.text("Devices found") or "") and app.text("Devices found"),
            20,
            what="the device list",
        )
        assert "0 camera(s)" in found and "0 microphone(s)" not in found, found
        # Camera: a video file, scaled to 640 x 480.
        app.click("Camera")
        for key in ("Down", "Down", "Return"):  # None -> Camera device -> Video file
            app.press(key)
        app.click("Camera video file")
        app.type_text(f"{video}?loop=true")
        app.click("Camera frame size")
        for key in ("Down", "Down", "Return"):  # as delivered -> 320 x 240 -> 640 x 480
            app.press(key)
        assert app.text("Camera frame size") == "640 x 480"
        # Microphone: down the list (none, default, then what PortAudio listed) to the ALSA
        # device "default" as PortAudio found it (here the one that hears the tone).
        app.click("Microphone")
        seen = []
        for _ in range(12):
            app.press("Down")
            seen.append(app.text("Microphone"))
            if seen[-1].startswith("default ("):
                break
        chosen = seen[-1]
        assert chosen.startswith("default ("), seen
        _tick(app, "Participant consents to video")
        _tick(app, "Participant consents to audio")
        st = _record(app, seconds=2.0)
        assert st["capture"]["camera_open"] and st["capture"]["microphone_open"], st
        s = closed_session(app.stop_recording_and_wait())

    v = s.videos["video"]
    assert (v.width, v.height) == (640, 480)
    assert v.n_frames >= 1.5 * capture.FPS
    a = s.streams["audio"]
    # the device chosen in the list, by its name (the list's "name (host API)")
    assert a.info.source == "microphone:" + chosen.rsplit(" (", 1)[0], a.info.source
    x = a.data[capture.RATE // 4 :, 0]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak = np.fft.rfftfreq(len(x), 1 / capture.RATE)[np.argmax(spectrum)]
    assert peak == pytest.approx(capture.TONE_HZ, abs=2)
