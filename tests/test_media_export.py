"""BIDS export of the participant's face video (MP4 + frame timing table) and voice (WAV)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from bids_check import assert_bids_valid
from test_interchange_helpers import make_session

from data_schema.exporters import export_session
from data_schema.reader import read_session
from data_schema.types import StreamInfo, VideoInfo
from data_schema.writer import SessionWriter

T0 = 5000.0  # the EEG's first sample (LSL seconds)
VIDEO_T0 = T0 + 0.2137  # the camera started a little after the EEG
AUDIO_T0 = T0 + 0.1049
FPS = 30.0
AUDIO_RATE = 16000.0


def jpeg(i: int, width: int = 64, height: int = 48) -> bytes:
    """A small JPEG whose brightness encodes ``i`` (so frames can be told apart)."""
    from PIL import Image

    image = Image.new("RGB", (width, height), ((i * 8) % 256, 128, 255 - (i * 8) % 256))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_media_session(
    path: Path,
    *,
    seconds: float = 3.0,
    video_seconds: float = 2.0,
    audio_seconds: float = 2.5,
    participant: str = "P007",
) -> Path:
    """EEG (4 channels, 250 Hz, channel 0 counts samples) from ``T0``, a 30 fps camera from
    ``VIDEO_T0`` with a little timestamp jitter, and a 16 kHz voice from ``AUDIO_T0`` whose
    samples count (scaled) so every sample can be recognised."""
    rate = 250.0
    n = round(seconds * rate)
    eeg = np.random.default_rng(3).standard_normal((n, 4)).astype(np.float32) * 20
    eeg[:, 0] = np.arange(n)
    names = ["Fz", "Cz", "Pz", "Oz"]
    info = StreamInfo("eeg", names, ["eeg"] * 4, ["uV"] * 4, rate, "EEG", "brainflow:Synthetic")
    n_frames = round(video_seconds * FPS)
    jitter = np.random.default_rng(5).uniform(-0.002, 0.002, n_frames)
    frame_ts = VIDEO_T0 + np.arange(n_frames) / FPS + jitter
    n_audio = round(audio_seconds * AUDIO_RATE)
    audio = ((np.arange(n_audio) % 32768) / 32768.0).astype(np.float32)[:, None]
    audio_ts = AUDIO_T0 + np.arange(n_audio) / AUDIO_RATE
    mic = StreamInfo("audio", ["mic"], ["misc"], ["a.u."], AUDIO_RATE, "Audio", "microphone:test")
    with SessionWriter(path, participant_id=participant, protocol="test") as w:
        w.add_stream("eeg", info, clock={"clock": "lsl", "from": "unix", "offset": -1.7e9})
        w.add_stream("audio", mic, clock={"clock": "lsl", "from": "portaudio"})
        w.add_video_stream(
            "video",
            VideoInfo("video", 64, 48, FPS, source="file:test.mp4"),
            clock={"from": "file", "offset": 0.0},
        )
        w.append("eeg", eeg, T0 + np.arange(n) / rate)
        w.append("audio", audio, audio_ts)
        w.append_frames("video", [jpeg(i) for i in range(n_frames)], frame_ts)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("media")
    session = make_media_session(tmp / "s.h5")
    root = tmp / "bids"
    export_session(session, "bids", root, line_freq=50.0)
    return session, root


def test_video_exports_as_mp4_with_every_frame_and_its_time(exported) -> None:
    import av

    session_path, root = exported
    session = read_session(session_path)
    video = session.videos["video"]
    beh = root / "sub-P007" / "beh"
    mp4 = beh / "sub-P007_task-recall_video.mp4"
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (64, 48)
        assert float(stream.average_rate) == pytest.approx(FPS)
        decoded = list(container.decode(stream))
        duration = float(stream.duration * stream.time_base)
    assert len(decoded) == video.n_frames == 60
    assert duration == pytest.approx(video.n_frames / FPS, abs=1e-3)
    # Frames in order: the red channel encodes the index (JPEG and H.264 are lossy).
    red = [int(np.median(f.to_ndarray(format="rgb24")[..., 0])) for f in decoded[:10]]
    assert np.all(np.abs(np.array(red) - np.arange(10) * 8) <= 6), red

    table = (beh / "sub-P007_task-recall_frames.tsv").read_text().splitlines()
    assert table[0].split("\t") == ["frame", "onset", "lsl_timestamp"]
    rows = np.array([[float(x) for x in line.split("\t")] for line in table[1:]])
    eeg_t0 = session.eeg.timestamps[0]
    assert rows[:, 0].tolist() == list(range(video.n_frames))
    assert rows[0, 1] == pytest.approx(video.timestamps[0] - eeg_t0, abs=1e-6)
    np.testing.assert_allclose(rows[:, 1], video.timestamps - eeg_t0, atol=1e-6)
    np.testing.assert_allclose(rows[:, 2], video.timestamps, atol=1e-6)

    side = json.loads((beh / "sub-P007_task-recall_video.json").read_text())
    assert side["FrameCount"] == 60 and side["FrameRate"] == FPS
    assert side["StartTime"] == pytest.approx(video.timestamps[0] - eeg_t0, abs=1e-9)
    assert side["LSLStartTime"] == video.timestamps[0]
    assert side["EEGFirstSampleLSLTime"] == eeg_t0
    assert side["FrameTimesFile"] == "sub-P007_task-recall_frames.tsv"


def test_audio_exports_as_wav_with_every_sample(exported) -> None:
    from scipy.io import wavfile

    session_path, root = exported
    audio = read_session(session_path).streams["audio"]
    beh = root / "sub-P007" / "beh"
    rate, samples = wavfile.read(beh / "sub-P007_task-recall_audio.wav")
    assert rate == 16000
    assert samples.dtype == np.float32 and samples.shape == (audio.n_samples,)
    np.testing.assert_array_equal(samples, audio.data[:, 0])
    side = json.loads((beh / "sub-P007_task-recall_audio.json").read_text())
    assert side["SampleCount"] == audio.n_samples == 40000
    assert side["StartTime"] == pytest.approx(AUDIO_T0 - T0, abs=1e-9)
    assert side["Discontinuities"] == []


def test_the_dataset_with_media_passes_the_bids_validator(exported) -> None:
    _, root = exported
    ignore = (root / ".bidsignore").read_text().splitlines()
    assert "*_video.mp4" in ignore and "*_audio.wav" in ignore
    # The EEG is written as before, beside the media.
    assert (root / "sub-P007" / "eeg" / "sub-P007_task-recall_eeg.vhdr").exists()
    assert_bids_valid(root)


def test_second_session_adds_media_and_never_overwrites(exported, tmp_path: Path) -> None:
    from data_schema.errors import SessionExistsError

    session_path, root = exported
    with pytest.raises(SessionExistsError):
        export_session(session_path, "bids", root)
    files = export_session(session_path, "bids", root, task="rest")
    names = {p.name for p in files}
    assert "sub-P007_task-rest_video.mp4" in names and "sub-P007_task-rest_audio.wav" in names
    ignore = (root / ".bidsignore").read_text().splitlines()
    assert ignore.count("*_video.mp4") == 1  # not added twice


def test_a_session_without_media_exports_exactly_as_before(tmp_path: Path) -> None:
    root = tmp_path / "bids"
    files = export_session(make_session(tmp_path / "plain.h5"), "bids", root)
    assert not (root / ".bidsignore").exists()
    assert not (root / "sub-P007" / "beh").exists()
    assert all(p.parent.name == "eeg" for p in files)
