"""The writer: never overwrites, refuses names, keeps pace, and survives a full disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_schema.errors import SessionExistsError, SessionFileError
from data_schema.reader import UnclosedSessionWarning, read_session
from data_schema.types import Event, StreamInfo
from data_schema.validator import validate_session
from data_schema.writer import SessionWriter

REPO = Path(__file__).resolve().parents[1]


def _eeg(n: int, rate: float) -> StreamInfo:
    return StreamInfo("eeg", [f"E{i}" for i in range(n)], ["eeg"] * n, ["uV"] * n, rate)


def test_never_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "s.h5"
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", _eeg(2, 10))
        w.append("eeg", np.ones((5, 2)), np.arange(5.0))
    before = path.read_bytes()
    with pytest.raises(SessionExistsError, match="never overwrites"):
        SessionWriter(path, participant_id="P002")
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "pid", ["Jane Doe", "", "../P001", "P001/x", "x" * 65, "Zoë", "-P1", "P1\n"]
)
def test_participant_must_be_a_pseudonym_code(tmp_path, pid):
    with pytest.raises(SessionFileError, match="pseudonym"):
        SessionWriter(tmp_path / "s.h5", participant_id=pid)
    assert not (tmp_path / "s.h5").exists()


def test_close_marks_the_file_and_gives_back_the_disk_reserve(tmp_path):
    path = tmp_path / "s.h5"
    w = SessionWriter(path, participant_id="P001", protocol="rym", notes="quiet room")
    w.add_stream("eeg", _eeg(4, 250))
    w.append("eeg", np.zeros((100, 4)), 10 + np.arange(100) / 250)
    w.add_event(Event(10.1, "keyboard", "key_down", '{"key": "1", "valence": "positive"}'))
    while_open = path.stat().st_size
    w.close()
    w.close()  # twice is harmless
    # While recording the file owns space ahead of HDF5's end (the disk-full reserve); a proper
    # close hands it back.
    assert while_open > 500_000
    assert path.stat().st_size < while_open / 2
    s = read_session(path)
    assert s.clean_close and s.attrs["ended_at"] >= s.attrs["started_at"]
    assert s.attrs["notes"] == "quiet room" and s.eeg.n_samples == 100
    assert validate_session(path) == []


def test_appends_keep_pace_with_256_channels_at_2khz(tmp_path):
    """20 s of a 256-channel, 2 kHz amplifier in 50 ms chunks, written well under real time.

    If appends grew with the file (a resize that copies, a chunk per row), the late appends
    would be far slower than the early ones.
    """
    rate, n_ch, chunk, seconds = 2000, 256, 100, 20
    path = tmp_path / "big.h5"
    block = np.random.default_rng(0).normal(size=(chunk, n_ch)).astype(np.float32)
    times = []
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream("eeg", _eeg(n_ch, rate))
        chunks = w._f["streams/eeg/data"].chunks
        for i in range(seconds * rate // chunk):
            block[:, 0] = np.arange(i * chunk, (i + 1) * chunk)  # a sample counter
            t = time.perf_counter()
            w.append("eeg", block, (i * chunk + np.arange(chunk)) / rate)
            times.append(time.perf_counter() - t)
    assert sum(times) < seconds  # faster than the amplifier produces it, even on a busy box
    q = len(times) // 4
    assert np.median(times[-q:]) < 5 * np.median(times[:q]) + 1e-3
    assert chunks[1] == n_ch and 64 * 1024 <= chunks[0] * n_ch * 4 <= 4 * 1024 * 1024
    with h5py.File(path) as f:
        counter = f["streams/eeg/data"][:, 0]
    np.testing.assert_array_equal(counter, np.arange(seconds * rate))  # no sample lost


DISK_FULL_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    import numpy as np
    from data_schema.errors import DiskFullError
    from data_schema.types import StreamInfo
    from data_schema.writer import SessionWriter

    path, limit = sys.argv[1], int(sys.argv[2])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    w = SessionWriter(path, participant_id="P001")
    w.add_stream("eeg", StreamInfo("eeg", [f"E{i}" for i in range(64)], ["eeg"] * 64,
                                   ["uV"] * 64, 1000.0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # the disk "fills" here
    written = 0
    try:
        for i in range(100000):
            block = np.full((100, 64), i, np.float32)
            w.append("eeg", block, (i * 100 + np.arange(100)) / 1000.0)
            written += 100
    except DiskFullError as exc:
        print("stopped:", exc, file=sys.stderr)
    w.close()
    print(written)
    """
)


def test_disk_full_stops_cleanly_and_keeps_everything_written(tmp_path):
    path = tmp_path / "full.h5"
    limit = 6_000_000
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL_CHILD, str(path), str(limit)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "disk holding" in proc.stderr and "full" in proc.stderr
    written = int(proc.stdout.split()[-1])
    assert written > 10_000  # it stopped mid-recording, not at the start
    assert path.stat().st_size <= limit
    with pytest.warns(UnclosedSessionWarning):
        s = read_session(path)
    assert s.eeg.n_samples == written  # every append that returned is in the file
    np.testing.assert_array_equal(s.eeg.data[::100, 0], np.arange(written // 100))
    assert "full" in s.attrs["stop_reason"] and not s.clean_close
    problems = validate_session(path)
    assert [p.severity for p in problems] == ["warning"]
    assert "stopped early" in problems[0].what
