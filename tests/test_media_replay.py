"""Replay over LSL of a session with voice and face: the audio and the video frames come out on
the EEG's replay clock, at their recorded offsets to the EEG."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
from test_media_export import AUDIO_RATE, make_media_session

from app.cli import main
from data_schema.reader import read_session

REPO = Path(__file__).resolve().parents[1]


def _inlet(name: str) -> pylsl.StreamInlet:
    streams = pylsl.resolve_byprop("name", name, timeout=15)
    assert streams, f"no LSL stream {name!r}"
    inlet = pylsl.StreamInlet(streams[0], max_buflen=30)
    inlet.open_stream(timeout=10)
    return inlet


def test_replay_publishes_audio_and_frames_in_sync_with_the_eeg(
    tmp_path: Path, unique_id: str
) -> None:
    path = make_media_session(tmp_path / "s.h5", seconds=2.0, video_seconds=1.5, audio_seconds=1.5)
    session = read_session(path)
    video, audio, eeg = session.videos["video"], session.streams["audio"], session.eeg
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # --loop: the inlets connect after the replay has begun; every pass has the same offsets.
    command = ["replay", str(path), "--lsl", "--loop", "--name", unique_id]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    got = {"eeg": ([], []), "audio": ([], []), "video": ([], []), "index": ([], [])}
    lags = []
    try:
        inlets = {
            "eeg": _inlet(unique_id),
            "audio": _inlet(f"{unique_id}-audio"),
            "video": _inlet(f"{unique_id}-video"),
            "index": _inlet(f"{unique_id}-video-index"),
        }
        full = inlets["video"].info(timeout=5)
        assert (full.type(), full.channel_count()) == ("Video", 2)
        assert full.desc().child_value("encoding") == "base64"
        assert inlets["audio"].info().type() == "Audio"
        assert inlets["audio"].info().nominal_srate() == AUDIO_RATE
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for key, inlet in inlets.items():
                chunk, stamps = inlet.pull_chunk(timeout=0.0)
                if key == "video" and stamps:
                    lags.append(pylsl.local_clock() - stamps[-1])
                got[key][0].extend(chunk)
                got[key][1].extend(stamps)
            frames = {int(s[0]) for s in got["video"][0]}
            if len(frames) == video.n_frames and len(got["audio"][1]) > audio.n_samples:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "'" + unique_id + "-video'" in err and "frame indices" in err
    assert "stopped by Ctrl-C" in out and "frames" in out

    # Offset of each pass on the replay clock, from the EEG (channel 0 counts samples).
    counter = np.array(got["eeg"][0])[:, 0].astype(int)
    eeg_offsets = np.array(got["eeg"][1]) - eeg.timestamps[counter]

    def offsets_match(recorded: np.ndarray, replayed: np.ndarray) -> np.ndarray:
        off = replayed - recorded
        return np.min(np.abs(off[:, None] - np.unique(eeg_offsets.round(4))[None, :]), axis=1)

    # Every frame of the recording, its JPEG as stored, at its recorded offset to the EEG.
    samples, stamps = got["video"]
    index = np.array([int(s[0]) for s in samples])
    assert set(index) == set(range(video.n_frames))
    first = {i: s[1] for i, s in zip(index, samples)}
    for i in (0, video.n_frames // 2, video.n_frames - 1):
        assert base64.b64decode(first[i]) == video.jpeg(i)
    assert np.max(offsets_match(video.timestamps[index], np.array(stamps))) < 0.02
    # The index stream carries the same frames at the same times.
    idx_samples, idx_stamps = got["index"]
    idx = np.array(idx_samples)[:, 0]
    n = min(len(idx), len(index))
    assert n > video.n_frames // 2
    ours = dict(zip(zip(index, np.round(stamps, 6)), [True] * len(index)))
    assert sum((i, t) in ours for i, t in zip(idx[:n], np.round(idx_stamps[:n], 6))) >= n - 2
    # Released when due: never early, within a few polls.
    assert min(lags) > -0.005 and np.median(lags) < 0.15, (min(lags), np.median(lags))

    # Every audio sample value encodes its index in the recording.
    values, a_stamps = got["audio"]
    j = np.rint(np.array(values)[:, 0] * 32768).astype(int)
    assert np.array_equal(np.array(values)[:, 0], audio.data[j, 0])
    assert np.max(offsets_match(audio.timestamps[j], np.array(a_stamps))) < 0.02


def test_replay_waits_for_media_after_the_eeg_and_counts_them(
    tmp_path: Path, unique_id: str, capsys
) -> None:
    # The voice and face go on 0.5 s after the EEG's last sample: replay ends after them.
    path = make_media_session(tmp_path / "s.h5", seconds=1.0, video_seconds=1.2, audio_seconds=1.3)
    session = read_session(path)
    started = time.monotonic()
    code = main(["replay", str(path), "--lsl", "--quiet", "--speed", "4", "--name", unique_id])
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert code == 0
    n_audio, n_frames = session.streams["audio"].n_samples, session.videos["video"].n_frames
    assert f"{n_audio} samples of other streams, {n_frames} frames" in out
    assert "250 samples, 0 events" in out
    # (0.1 s + 1.3 s of audio) / 4 ~ 0.35 s, plus outlets closing.
    assert 0.3 < elapsed < 10

    code = main(["replay", str(path), "--lsl", "--quiet", "--only-stream", "--name", unique_id])
    assert code == 0 and "frames" not in capsys.readouterr().out
