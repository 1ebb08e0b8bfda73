"""A listening block in the real app: the clips reach a real ALSA playback device, their
start is on the LSL clock, and the participant's SAM clicks rate the clip just heard.

The app runs on Xvfb with openbox (``tests/realinput``); the participant clicks the SAM
buttons through xdotool, as a person would. There is no sound card here, so PortAudio plays
into an ALSA ``file`` PCM (a temporary ``~/.asoundrc`` in a temporary HOME) that appends every
sample it is given to a raw file (through ``cat``: the plugin truncates a plain file at every
open), which the test compares with the library's clips.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from realinput.recorded import closed_session
from realinput.sound import playback_home

pytestmark = [pytest.mark.gui, pytest.mark.timeout(150)]

RATE = 22050

PROTOCOL = """\
version: 1
name: listen-rig
phases:
  - id: listen
    kind: listening
    library: music
    order: shuffled
    rating_seconds: 30
"""


def _library(folder):
    import soundfile

    from protocols.library import write_library

    folder.mkdir()
    rows = []
    for i, f0 in enumerate((330.0, 523.0)):
        t = np.arange(int(1.5 * RATE)) / RATE
        audio = (0.4 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)
        soundfile.write(str(folder / f"c{i}.wav"), audio, RATE, subtype="PCM_16")
        rows.append({"id": f"c{i}", "file": f"c{i}.wav", "title": f"tone {f0:g} Hz"})
    write_library(folder, rows)


def test_clips_are_played_timed_and_rated_by_clicks(real_app, tmp_path):
    from decoding.listening import clip_plays

    home = tmp_path / "home"
    played = playback_home(home, RATE)
    _library(tmp_path / "music")
    proto = tmp_path / "listen.yaml"
    proto.write_text(PROTOCOL)

    app = real_app(protocol=str(proto), time_scale=1.0, env={"HOME": str(home)})
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    app.wait_phase("sam", timeout=20)  # the first clip played (1.5 s), now its rating
    app.click("Valence 8", window="participant display")
    app.click("Arousal 3", window="participant display")
    app.wait_until(
        lambda: app.state()["engine"]["phase_id"] == "listen-c0-rating", 20, what="rating 2"
    )
    app.click("Valence 2", window="participant display")
    app.click("Arousal 7", window="participant display")
    app.wait_until(lambda: app.state()["engine"]["done"], 20, what="the protocol's end")
    s = closed_session(app.stop_recording_and_wait())

    assert not s.events_where(source="stimulus", label="clip_error")
    plays = clip_plays(s)
    # The order is seeded by the participant's pseudonym (P042 hears c1 first; an empty one
    # would give c0 first), so each participant hears another order.
    assert [p.clip for p in plays] == ["c1", "c0"]
    assert [(p.valence, p.arousal) for p in plays] == [(8.0, 3.0), (2.0, 7.0)]
    starts = [json.loads(e.value) for e in s.events_where(source="stimulus", label="clip_start")]
    assert [v["clip"] for v in starts] == ["c1", "c0"]
    assert all(v["output_latency"] is not None and v["output_latency"] >= 0 for v in starts)
    # The sound started inside its listening phase, within a moment of the phase start.
    phase = {
        json.loads(e.value)["clip"]: e.timestamp
        for e in s.events_where(source="protocol", label="phase_start")
        if json.loads(e.value)["kind"] == "listening"
    }
    for p in plays:
        assert 0.0 <= p.start - phase[p.clip] < 1.0
    # What reached the device is the two clips, in order.
    audio = np.fromfile(played, dtype="<i2").astype(np.float32) / 32767
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    assert len(loud) >= 2 * int(1.5 * RATE) * 0.9  # both clips, not one
    gap = np.flatnonzero(np.diff(loud) > 1000)  # silence (stream end) between the two clips
    firsts = [loud[0], loud[gap[0] + 1] if len(gap) else loud[0] + int(1.5 * RATE)]
    spectrum_peaks = []
    for lo in firsts:
        seg = audio[lo + 2000 : lo + 2000 + 8192]
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        spectrum_peaks.append(np.fft.rfftfreq(len(seg), 1 / RATE)[int(np.argmax(spec))])
    assert spectrum_peaks[0] == pytest.approx(523.0, abs=5)
    assert spectrum_peaks[1] == pytest.approx(330.0, abs=5)
