"""The participant's face and voice beside the EEG: ``recall-lab record --camera --microphone``.

The camera is a video made with FFmpeg's test source, played as if live (``file:``). The
microphone is a real ALSA capture device, given to PortAudio through a temporary HOME with an
``.asoundrc`` (PortAudio reads the ALSA configuration once per process, so the recording runs
in a child process, as in ``test_app_melody.py``). Its ``file`` PCM reads a FIFO that this test
fills with a 440 Hz tone at real time, one ALSA period at a time, so the device is paced like a
microphone (a plain file would be read as fast as PortAudio can).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from data_schema.reader import UnclosedSessionWarning, read_session
from data_schema.validator import validate_session

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "app.cli"]
FFMPEG = "/usr/bin/ffmpeg"
RATE = 16000
TONE_HZ = 440.0
FPS = 30

pytestmark = pytest.mark.skipif(not Path(FFMPEG).exists(), reason="needs ffmpeg")

ASOUNDRC = """
pcm.!default {{
    type asym
    playback.pcm "nullout"
    capture.pcm "mic"
}}
pcm.nullout {{ type null }}
pcm.mic {{
    type plug
    slave {{
        pcm {{
            type file
            slave.pcm "null"
            file "/dev/null"
            infile "{infile}"
            format "raw"
        }}
        format S16_LE
        rate {rate}
        channels 1
    }}
}}
"""

# How many frames PortAudio asks the device for at a time (its ALSA period): the FIFO is fed
# in blocks of exactly that size, so every read finds a whole block.
PERIOD_PROBE = f"""
import sounddevice as sd, time
sizes = []
with sd.InputStream(samplerate={RATE}, channels=1, dtype="float32",
                    callback=lambda d, n, t, s: sizes.append(n)):
    time.sleep(0.2)
print(sizes[5])
"""


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("video") / "testsrc.mp4"
    subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size=320x240:rate={FPS}",
            "-t",
            "4",
            "-pix_fmt",
            "yuv420p",
            str(out),
        ],
        check=True,
        timeout=60,
    )
    return out


@pytest.fixture(scope="module")
def mic_home(tmp_path_factory) -> Path:
    """A HOME whose ALSA default capture device reads ``mic.fifo`` (fed by :func:`tone`)."""
    home = tmp_path_factory.mktemp("home")
    probe = home / "probe.raw"
    np.zeros(RATE * 5, "<i2").tofile(probe)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=probe, rate=RATE))
    r = subprocess.run(
        [sys.executable, "-c", PERIOD_PROBE],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (home / "period").write_text(r.stdout.strip())
    fifo = home / "mic.fifo"
    os.mkfifo(fifo)
    (home / ".asoundrc").write_text(ASOUNDRC.format(infile=fifo, rate=RATE))
    return home


@contextmanager
def tone(home: Path):
    """Feed the FIFO with a 440 Hz tone at real time while the block runs.

    PortAudio opens the device more than once (listing devices, then the stream); each
    reader gets the tone from where the last one left it.
    """
    fifo = home / "mic.fifo"
    block = int((home / "period").read_text())
    stop = threading.Event()

    def feed() -> None:
        k = 0
        while not stop.is_set():
            fd = os.open(fifo, os.O_WRONLY)  # waits for a reader
            t0 = time.monotonic() - k / RATE
            try:
                while not stop.is_set():
                    idx = np.arange(k, k + block)
                    x = 0.3 * np.sin(2 * np.pi * TONE_HZ * idx / RATE)
                    os.write(fd, (x * 32767).astype("<i2").tobytes())
                    k += block
                    wait = t0 + k / RATE - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
            except BrokenPipeError:
                pass
            finally:
                os.close(fd)

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        try:  # a feeder waiting for a reader in open() is let go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        t.join(5)


def _record(home: Path, *args: str, **kw):
    env = {**os.environ, "HOME": str(home)}
    return subprocess.run(
        [*CLI, "record", "--source", "synthetic", "--quiet", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def _ffmpeg_frame(video: Path, index: int) -> np.ndarray:
    raw = subprocess.run(
        [
            FFMPEG,
            "-v",
            "error",
            "-i",
            str(video),
            "-vf",
            f"select=eq(n\\,{index})",
            "-vframes",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(240, 320, 3)


def test_face_and_voice_are_recorded_beside_the_eeg(tmp_path, video, mic_home):
    out = tmp_path / "s.h5"
    with tone(mic_home):
        r = _record(
            mic_home,
            "--duration",
            "3",
            "--camera",
            f"file:{video}",
            "--microphone",
            "default",
            "--out",
            str(out),
        )
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "video frames (dropped 0)" in r.stdout and "lost 0 samples" in r.stdout

    s = read_session(out)
    assert s.clean_close
    v = s.videos["video"]
    assert (v.width, v.height, v.nominal_rate) == (320, 240, 30)
    assert v.clock_mapping["from"] == "file"
    # Released at real time from the start of the recording: one frame per 1/30 s, none
    # missing, as many as 3 s hold (the video is 4 s long).
    np.testing.assert_allclose(np.diff(v.timestamps), 1 / FPS, atol=1e-6)
    assert 2.4 * FPS <= v.n_frames <= 3.2 * FPS
    eeg = s.eeg.timestamps
    # Camera and amplifier start together on the one clock, and end together at the stop
    # (the EEG's last pull is not half a second before it).
    assert abs(v.timestamps[0] - eeg[0]) < 0.2
    assert abs(v.timestamps[-1] - eeg[-1]) < 0.1

    # A decoded frame is the video's frame, within JPEG's error.
    frame = v.frame(10)
    assert frame.shape == (240, 320, 3)
    expected = _ffmpeg_frame(video, 10)
    assert np.mean(np.abs(frame.astype(int) - expected.astype(int))) < 4
    assert v.jpeg(10)[:2] == b"\xff\xd8"

    a = s.streams["audio"]
    assert a.info.stream_type == "Audio" and a.info.units == ["a.u."]
    assert a.clock_mapping["from"].startswith("portaudio")
    span = a.timestamps[-1] - a.timestamps[0]
    assert 2.4 < span < 3.6
    assert a.n_samples == pytest.approx(RATE * span, rel=0.02)
    assert np.all(np.diff(a.timestamps) > 0)
    x = a.data[RATE // 4 :, 0]  # the device's first reads may repeat a block
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    assert np.fft.rfftfreq(len(x), 1 / RATE)[np.argmax(spectrum)] == pytest.approx(TONE_HZ, abs=2)
    assert abs(a.timestamps[0] - eeg[0]) < 0.5

    # validate and info know about the video.
    assert [p for p in validate_session(out) if p.severity == "error"] == []
    info = subprocess.run(
        [*CLI, "info", "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    summary = json.loads(info.stdout)
    (vs,) = summary["videos"]
    assert vs["frames"] == v.n_frames and vs["width"] == 320 and abs(vs["measured_rate"] - 30) < 0.1
    assert {st["name"] for st in summary["streams"]} == {"eeg", "audio"}
    text = subprocess.run([*CLI, "info", str(out)], cwd=REPO, capture_output=True, text=True)
    assert "320x240 jpeg" in text.stdout
    val = subprocess.run([*CLI, "validate", str(out)], cwd=REPO, capture_output=True, text=True)
    assert val.returncode == 0, val.stdout


def test_sigkill_keeps_frames_and_audio_up_to_the_last_flush(tmp_path, video, mic_home):
    import pylsl

    out = tmp_path / "killed.h5"
    env = {**os.environ, "HOME": str(mic_home)}
    with tone(mic_home):
        proc = subprocess.Popen(
            [
                *CLI,
                "record",
                "--source",
                "synthetic",
                "--quiet",
                "--out",
                str(out),
                "--camera",
                f"file:{video}",
                "--microphone",
                "default",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not out.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(2.5)
        proc.send_signal(signal.SIGKILL)
        killed_at = pylsl.local_clock()
        proc.communicate(timeout=30)
    with pytest.warns(UnclosedSessionWarning):
        s = read_session(out)
    v, a = s.videos["video"], s.streams["audio"]
    # Flushed twice a second: what is missing is at most about one flush (plus a pull).
    assert v.n_frames > 0 and v.timestamps[-1] > killed_at - 1.2
    assert v.n_frames >= (killed_at - v.timestamps[0] - 1.2) * FPS
    np.testing.assert_allclose(np.diff(v.timestamps), 1 / FPS, atol=1e-6)
    assert v.frame(v.n_frames - 1).shape == (240, 320, 3)
    assert a.timestamps[-1] > killed_at - 1.2
    assert s.eeg.timestamps[-1] > killed_at - 1.2
    assert [p for p in validate_session(out) if p.severity == "error"] == []


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--camera", "/dev/video9", "no camera '/dev/video9'"),
        ("--camera", "file:missing.mp4", "no camera 'file:missing.mp4'"),
        ("--camera", "file:{bad}", "is not a video"),
        ("--camera", "file:{video}?quality=500", "quality=500"),
        ("--microphone", "nosuchdevice", "no microphone 'nosuchdevice'"),
    ],
)
def test_a_device_that_cannot_be_opened_is_one_line_and_no_file(
    tmp_path, video, flag, value, words
):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    out = tmp_path / "never.h5"
    r = _record(
        Path(os.environ.get("HOME", tmp_path)),
        "--duration",
        "1",
        flag,
        value.format(bad=bad, video=video),
        "--out",
        str(out),
    )
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
    assert not out.exists()


def test_a_session_without_video_reads_as_before(tmp_path):
    from data_schema.types import StreamInfo
    from data_schema.writer import SessionWriter

    path = tmp_path / "plain.h5"
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", StreamInfo("eeg", ["Cz"], ["eeg"], ["uV"], 250))
        w.append("eeg", np.zeros((10, 1)), 1 + np.arange(10) / 250)
    s = read_session(path)
    assert s.videos == {} and s.eeg.n_samples == 10


def test_video_frames_through_the_writer_and_reader(tmp_path):
    """Frames of any size, one per row; n_frames, timestamps, jpeg() and frame() agree."""
    import io

    from PIL import Image

    from data_schema.types import StreamInfo, VideoInfo
    from data_schema.writer import SessionWriter

    def jpeg(level: int) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (level, 255 - level, 128)).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    path = tmp_path / "v.h5"
    frames = [jpeg(k * 20) for k in range(12)]
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", StreamInfo("eeg", ["Cz"], ["eeg"], ["uV"], 250))
        w.append("eeg", np.zeros((250, 1)), 10 + np.arange(250) / 250)
        w.add_video_stream("video", VideoInfo("video", 64, 48, 10.0, "file:x.mp4"))
        w.append_frames("video", frames[:5], 10 + np.arange(5) / 10)
        w.append_frames("video", frames[5:], 10 + np.arange(5, 12) / 10)
    s = read_session(path)
    v = s.videos["video"]
    assert v.n_frames == 12 and v.jpeg(7) == frames[7] and v.jpegs(2, 4) == frames[2:4]
    assert tuple(v.frame(3)[0, 0]) == pytest.approx((60, 195, 128), abs=3)
    assert v.nearest(10.52) == 5
    assert [p for p in validate_session(path) if p.severity == "error"] == []


FUSION_QUICK = """
fusion: {max_epochs: 4, patience: 2, d_model: 16, heads: 2, frames_per_window: 2}
windows: {use_recall_only: false}
evaluation: {n_folds: 3, gap: 1.0, n_permutations_refit: 1}
"""


def test_demo_records_face_and_voice_and_decode_runs_the_fusion(
    tmp_path, video, mic_home, fusion_models
):
    out = tmp_path / "demo.h5"
    env = {**os.environ, "HOME": str(mic_home)}
    demo = ["demo", "--out", str(out), "--time-scale", "0.2", "--no-offline", "--quiet"]
    devices = ["--camera", f"file:{video}?loop=true", "--microphone", "default"]
    with tone(mic_home):
        r = subprocess.run(
            [*CLI, *demo, *devices],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = read_session(out)
    assert s.videos["video"].n_frames > 10 * FPS and "audio" in s.streams
    cfg = tmp_path / "quick.yaml"
    cfg.write_text(FUSION_QUICK)
    decode = ["decode", str(out), "--preset", "multimodal", "--models", str(fusion_models)]
    decode += ["--config", str(cfg), "--no-write", "--report", str(tmp_path / "rep")]
    d = subprocess.run(
        [*CLI, *decode, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert d.returncode == 0, d.stderr[-3000:]
    summary = json.loads(d.stdout)
    decoders = summary["decoders"]
    # the fusion and its three unimodal baselines, in the same run, each with its chance level
    assert set(decoders) == {"multimodal_fusion", "eeg_only", "audio_only", "video_only"}
    for m in decoders.values():
        assert m["f1_weighted"] is not None and m["chance_f1_weighted"] is not None


def test_narration_demo_records_each_memory_told_aloud(tmp_path, video, mic_home):
    out = tmp_path / "narration.h5"
    env = {**os.environ, "HOME": str(mic_home)}
    demo = ["demo", "--protocol", "narration_demo", "--out", str(out), "--time-scale", "0.25"]
    devices = ["--camera", f"file:{video}?loop=true", "--microphone", "default"]
    with tone(mic_home):
        r = subprocess.run(
            [*CLI, *demo, "--no-offline", "--quiet", *devices],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    s = read_session(out)
    phases: dict[tuple[str, str], list[float]] = {}
    for e in s.events_where(source="protocol"):
        if e.label in ("phase_start", "phase_end"):
            v = json.loads(e.value)
            phases.setdefault((v["kind"], v.get("memory") or ""), []).append(e.timestamp)
    starts = s.events_where(source="participant", label="narration_start")
    ends = s.events_where(source="participant", label="narration_end")
    assert [json.loads(e.value)["memory"] for e in starts] == ["m1", "m2"]
    audio = s.streams["audio"].timestamps
    frames = s.videos["video"].timestamps
    for began, ended in zip(starts, ends, strict=True):
        memory = json.loads(began.value)["memory"]
        lo, hi = phases[("narration", memory)]
        # the simulated participant pressed space to begin, then again when done
        assert lo < began.timestamp < ended.timestamp == hi
        assert json.loads(ended.value)["reason"] == "key"
        inside = (audio >= lo) & (audio < hi)
        assert np.count_nonzero(inside) == pytest.approx(RATE * (hi - lo), rel=0.02)
        rlo, rhi = phases[("recall", memory)]
        recall_frames = np.count_nonzero((frames >= rlo) & (frames < rhi))
        assert abs(recall_frames - (rhi - rlo) * FPS) <= 1
    # the voice only in the narrations (the sound is cut at the boundaries by its capture
    # times, the file's stamps are the smoothed line through them: a sample at a boundary may
    # sit a hair across it), the face only in recall and narration
    narrations = [span for (kind, _), span in phases.items() if kind == "narration"]
    outside = np.ones(len(audio), bool)
    for lo, hi in narrations:
        outside &= (audio < lo) | (audio >= hi)
    across = np.abs(audio[outside][:, None] - np.ravel(narrations)[None, :]).min(axis=1)
    assert np.all(across < 0.002), across.max()
    kept = np.zeros(len(frames), bool)
    for (kind, _), (lo, hi) in phases.items():
        if kind in ("recall", "narration"):
            kept |= (frames >= lo) & (frames < hi)
    assert kept.all()


def test_blocks_portaudio_dropped_are_counted_and_do_not_bend_the_timestamps():
    # The callback's blocks as PortAudio hands them over an input overflow: the third block's
    # capture time jumps by two blocks (800 samples never delivered).
    from data_schema.types import StreamInfo
    from drivers.clock import Dejitter
    from drivers.microphone import MicrophoneSource

    mic = MicrophoneSource(rate=16000)
    mic.info = StreamInfo("audio", ["mic"], ["misc"], ["a.u."], 16000.0, "Audio", "test", {})
    mic._dejitter = Dejitter(16000.0)
    block = np.zeros((400, 1), np.float32)
    status = type("S", (), {"input_overflow": False})()
    for k, adc in enumerate((10.0, 10.025, 10.1, 10.125)):
        status.input_overflow = k == 2
        mic._callback(block, 400, type("T", (), {"inputBufferAdcTime": adc})(), status)
    _, ts = mic._pull(10_000)
    lost = [e for e in mic.events.read_since(0)[0] if e.label == "samples_lost"]
    assert [e.value for e in lost] == ["audio:800"]
    assert abs(lost[0].timestamp - 10.1) < 1e-9
    # the samples after the hole keep their own capture times
    assert ts[800] == pytest.approx(10.1, abs=1e-6) and ts[0] == pytest.approx(10.0, abs=1e-6)
    overflow = [e for e in mic.events.read_since(0)[0] if e.label == "input_overflow"]
    assert [e.value for e in overflow] == ["audio:1"]


def test_the_microphone_switches_at_the_boundary_time_not_when_told():
    # A stop dated before the call keeps the sound captured until then (the participant's
    # last words, still queued) and leaves out what came after; a start dated before the call
    # takes back the sound captured since then from the pre-roll. 25-ms blocks of a counter.
    from data_schema.types import StreamInfo
    from drivers.clock import Dejitter
    from drivers.microphone import MicrophoneSource

    rate = 16000
    mic = MicrophoneSource(rate=rate)
    mic.info = StreamInfo("audio", ["mic"], ["misc"], ["a.u."], float(rate), "Audio", "test", {})
    mic._dejitter = Dejitter(float(rate))
    status = type("S", (), {"input_overflow": False})()

    def deliver(k: int) -> None:
        block = (k * 400 + np.arange(400, dtype=np.float32))[:, None]
        stamp = type("T", (), {"inputBufferAdcTime": 10.0 + k * 0.025})()
        mic._callback(block, 400, stamp, status)

    for k in range(5):  # 10.000 .. 10.125
        deliver(k)
    mic.set_recording(False, at=10.06)  # told at 10.125: 10.06 .. 10.125 is left out
    for k in range(5, 12):  # 10.125 .. 10.300
        deliver(k)
    mic.set_recording(True, at=10.21)  # told at 10.3: 10.21 .. 10.3 comes back
    for k in range(12, 16):
        deliver(k)
    data, ts = mic._pull(100_000)
    counter = data[:, 0].astype(int)
    first_part = np.arange(0, 960)  # 10.000 .. 10.060
    second_part = np.arange(3360, 16 * 400)  # 10.210 .. 10.400
    np.testing.assert_array_equal(counter, np.concatenate([first_part, second_part]))
    np.testing.assert_allclose(ts, 10.0 + counter / rate, atol=1e-6)
    # a stretch the protocol left out is not a hole
    assert not [e for e in mic.events.read_since(0)[0] if e.label == "samples_lost"]


CAPTURE_PROTOCOL = """
version: 1
name: cap
capture: {camera: [recall]}
memories: [{id: m1, cue: A summer by the lake}]
phases:
  - {id: rest, kind: baseline, duration: 3}
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, duration: 3}
      - {id: after, kind: baseline, duration: 2}
"""


def test_the_camera_records_only_in_the_phases_the_protocol_names(tmp_path, video):
    proto = tmp_path / "cap.yaml"
    proto.write_text(CAPTURE_PROTOCOL)
    out = tmp_path / "cap.h5"
    demo = ["demo", "--protocol", str(proto), "--out", str(out), "--no-offline", "--quiet"]
    r = subprocess.run(
        [*CLI, *demo, "--time-scale", "1", "--camera", f"file:{video}?loop=true"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    s = read_session(out)
    spans = {}
    for e in s.events_where(source="protocol"):
        if e.label in ("phase_start", "phase_end"):
            v = json.loads(e.value)
            spans.setdefault(v["phase"], []).append(e.timestamp)
    lo, hi = spans["recall"]
    ts = s.videos["video"].timestamps
    # Every frame of the recall and none outside it: the camera switches at the phase
    # boundary's time (frames are kept or left out by their own timestamps), not when the
    # loop that runs the protocol gets round to it.
    assert ts.min() >= lo and ts.max() < hi
    assert abs(len(ts) - (hi - lo) * FPS) <= 1
    changes = [json.loads(e.value) for e in s.events_where(source="protocol", label="capture")]
    assert [c["camera"] for c in changes] == [False, True, False]


def test_a_single_frame_batch_is_written(tmp_path):
    # The recorder hands the writer whatever the camera queued since the last flush: one
    # frame is a normal batch (h5py turned a one-element vlen array into a 2-D shape).
    import io

    from PIL import Image

    from data_schema.types import VideoInfo
    from data_schema.writer import SessionWriter

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (10, 200, 30)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    out = tmp_path / "one.h5"
    with SessionWriter(out, participant_id="P001") as w:
        w.add_video_stream("video", VideoInfo("video", 8, 6, 30.0, "test"))
        w.append_frames("video", [jpeg], np.array([1.0]))
        w.append_frames("video", [jpeg, jpeg], np.array([1.1, 1.2]))
        w.append_frames("video", [jpeg], np.array([1.3]))
    v = read_session(out).videos["video"]
    assert v.n_frames == 4 and v.jpeg(0) == jpeg and v.jpeg(3) == jpeg


def test_a_camera_that_fails_or_ends_mid_recording_leaves_an_event_and_the_eeg_goes_on(
    tmp_path, video
):
    import time as _time

    from data_schema.recorder import Recorder
    from data_schema.writer import SessionWriter
    from drivers.camera import parse_camera
    from drivers.spec import parse_source

    class Unplugged(type(parse_camera(f"file:{video}"))):
        """The device goes away after 15 frames (as a USB camera pulled out)."""

        def _deliver(self, frame, ts):
            if self.frames >= 15:
                raise OSError("No such device")
            super()._deliver(frame, ts)

    for cam, label in ((Unplugged(f"file:{video}"), "source_error"), (None, "video_ended")):
        if cam is None:  # the video file ends after 4 s, the recording goes on to 5 s
            cam = parse_camera(f"file:{video}")
        eeg = parse_source("synthetic")
        out = tmp_path / f"{label}.h5"
        writer = SessionWriter(out, participant_id="P001")
        rec = Recorder(writer, {"eeg": eeg}, frame_sources={"video": cam})
        rec.start()
        _time.sleep(5.0)
        rec.stop()
        s = read_session(out)
        assert s.clean_close and rec.error is None
        assert s.eeg.timestamps[-1] - s.eeg.timestamps[0] > 4.0  # the EEG went on
        (ev,) = [e for e in s.events if e.label == label]
        v = s.videos["video"]
        assert ev.timestamp >= v.timestamps[-1]
        assert v.n_frames == (15 if label == "source_error" else 4 * FPS)


def test_cameras_are_listed_from_sysfs_without_their_metadata_nodes(tmp_path):
    # The layout Linux gives a UVC webcam: a capture node (index 0) and a metadata node
    # (index 1) per camera; only capture nodes are cameras.
    from drivers.camera import list_cameras

    for node, name, index in (
        ("video0", "Integrated Camera: Integrated C", 0),
        ("video1", "Integrated Camera: Integrated C", 1),
        ("video10", "USB Webcam", 0),
        ("video2", "USB Webcam", 1),
    ):
        (tmp_path / node).mkdir()
        (tmp_path / node / "name").write_text(name + "\n")
        (tmp_path / node / "index").write_text(f"{index}\n")
    assert list_cameras(tmp_path) == [
        {"spec": "/dev/video0", "name": "Integrated Camera: Integrated C"},
        {"spec": "/dev/video10", "name": "USB Webcam"},
    ]
    assert list_cameras(tmp_path / "absent") == []


def test_boards_lists_cameras_and_microphones(mic_home):
    with tone(mic_home):  # PortAudio opens each device to probe it: the FIFO needs a writer
        r = subprocess.run(
            [*CLI, "boards", "--cameras", "--microphones", "--json"],
            cwd=REPO,
            env={**os.environ, "HOME": str(mic_home)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 0, r.stderr[-2000:]
    found = json.loads(r.stdout)
    assert isinstance(found["cameras"], list)
    names = [m["spec"] for m in found["microphones"]]
    assert "default" in names  # the ALSA default of this HOME: the FIFO microphone
    for m in found["microphones"]:
        assert m["channels"] >= 1 and m["rate"] > 0


def test_the_console_builds_camera_specifications():
    from app.widgets.capture_panel import camera_spec

    assert camera_spec("none", "/dev/video0") == ""
    assert camera_spec("device", "/dev/video0", size="1280x720", fps="30") == (
        "/dev/video0?width=1280&height=720&fps=30"
    )
    assert camera_spec("device", " 2 ") == "2"
    # a file is scaled but keeps its own rate; options typed with it are kept
    assert camera_spec("file", file="a.mp4?loop=true", size="640x480", fps="30") == (
        "file:a.mp4?loop=true&width=640&height=480"
    )
    assert camera_spec("file", file="  ") == ""
