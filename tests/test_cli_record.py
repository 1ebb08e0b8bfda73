"""``recall-lab record`` end to end: record, validate, info; killed, interrupted, disk full.

These run the real command in a subprocess with BrainFlow's synthetic board, because the faults
they test (SIGKILL, SIGINT, a file-size limit) are properties of a process.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_schema.reader import UnclosedSessionWarning, read_session
from data_schema.validator import validate_session

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "app.cli"]


def _cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, **kw
    )


def _start_record(out: Path, *extra: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, "record", "--source", "synthetic", "--out", str(out), "--quiet", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _wait_for_file(proc: subprocess.Popen, out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not out.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "recording never created its file"
        time.sleep(0.02)


def _record_validate_info(tmp_path: Path, seconds: float) -> None:
    out = tmp_path / "s.h5"
    rec = _cli("record", "--source", "synthetic", "--duration", str(seconds), "--out", str(out))
    assert rec.returncode == 0, rec.stderr
    assert "wrote" in rec.stdout and "lost 0 samples" in rec.stdout
    val = _cli("validate", str(out))
    assert val.returncode == 0, val.stdout
    verdict = val.stdout.strip().splitlines()[-1]
    assert verdict.startswith(f"{out} follows the session spec: 0 error(s)")
    assert "clean_close" not in val.stdout
    info = _cli("info", "--json", str(out))
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    (eeg,) = summary["streams"]
    assert summary["clean_close"] and summary["participant_id"] == "P000"
    assert eeg["name"] == "eeg" and eeg["nominal_rate"] == 250
    # BrainFlow takes a moment to start streaming, so a little less than `seconds` arrives.
    # (The synthetic board is a software timer: on a loaded machine it runs a little slow.)
    assert seconds - 2 < eeg["duration_s"] <= seconds + 0.5
    assert abs(eeg["measured_rate"] - 250) < 25 and eeg["samples"] > 0.8 * 250 * (seconds - 2)
    text = _cli("info", str(out))
    assert text.returncode == 0 and "clean close   yes" in text.stdout
    assert "250 Hz nominal" in text.stdout


def test_record_then_validate_then_info(tmp_path):
    _record_validate_info(tmp_path, 3)


@pytest.mark.slow
def test_record_30_seconds_then_validate_then_info(tmp_path):
    _record_validate_info(tmp_path, 30)


def _kill_and_measure(tmp_path: Path, i: int, rng: random.Random) -> float:
    """SIGKILL a recording at a random moment; return seconds of data missing at the end."""
    from drivers.clock import local_clock

    out = tmp_path / f"killed-{i}.h5"
    proc = _start_record(out)
    _wait_for_file(proc, out)
    moment = rng.uniform(1.5, 4.0)
    time.sleep(moment)
    killed_at = local_clock()  # the LSL clock is the machine's monotonic clock
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps it and closes the pipes
    with pytest.warns(UnclosedSessionWarning):
        s = read_session(out)
    assert s.eeg.n_samples > 0, f"nothing kept after {moment:.2f} s"
    assert np.all(np.diff(s.eeg.timestamps) >= 0)
    problems = validate_session(out)
    # Only warnings: that it was not closed, and on a loaded machine perhaps that the synthetic
    # board (a software timer) fell behind its nominal rate.
    assert [p for p in problems if p.severity == "error"] == []
    assert any("not closed properly" in p.what for p in problems)
    return killed_at - float(s.eeg.timestamps[-1])


def _kill_many(tmp_path: Path, n: int) -> list[float]:
    rng = random.Random(os.getpid())
    missing = [_kill_and_measure(tmp_path, i, rng) for i in range(n)]
    # Flushes every 0.5 s; BrainFlow's own delivery latency comes on top.
    assert max(missing) < 1.5, missing
    return missing


def test_sigkill_keeps_data_up_to_the_last_flush(tmp_path):
    _kill_many(tmp_path, 3)


@pytest.mark.slow
def test_sigkill_many_times(tmp_path):
    missing = _kill_many(tmp_path, 12)
    print(f"data missing after SIGKILL: mean {np.mean(missing):.3f} s, max {max(missing):.3f} s")


def test_ctrl_c_closes_cleanly_and_a_live_file_is_not_read(tmp_path):
    out = tmp_path / "s.h5"
    proc = _start_record(out)
    _wait_for_file(proc, out)
    time.sleep(1.5)
    live = _cli("info", str(out))  # the file is still being written
    assert live.returncode == 2
    (line,) = live.stderr.strip().splitlines()
    assert "open in another program (a recording in progress?)" in line
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert stdout.startswith(f"wrote {out}")
    assert "Traceback" not in stderr
    s = read_session(out)  # no UnclosedSessionWarning: warnings are errors here
    assert s.clean_close and s.eeg.n_samples > 0
    assert [p for p in validate_session(out) if p.severity == "error"] == []


def test_record_refuses_an_existing_file_and_leaves_it_alone(tmp_path):
    out = tmp_path / "s.h5"
    out.write_bytes(b"an earlier session")
    proc = _cli("record", "--duration", "1", "--out", str(out))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"recall-lab record: error: {out} already exists; recall-lab never overwrites a file: "
        "choose another output name"
    ]
    assert out.read_bytes() == b"an earlier session"


@pytest.mark.parametrize("pid", ["Jane Doe", "", "P 001", "a" * 65])
def test_record_refuses_a_participant_that_is_not_a_pseudonym(tmp_path, pid):
    out = tmp_path / "s.h5"
    proc = _cli("record", "--duration", "1", "--out", str(out), "--participant", pid)
    assert proc.returncode != 0
    (line,) = proc.stderr.strip().splitlines()
    assert "not a pseudonym code" in line and "Traceback" not in proc.stderr
    assert not out.exists()


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_stops_cleanly_with_one_line(tmp_path):
    """A disk that fills mid-recording: stop, keep everything, say so, exit non-zero.

    A per-process file-size limit stands in for the full disk (writes past it fail with EFBIG,
    as they would with ENOSPC). With the synthetic board's 18 kB/s this fills in ~20 s.
    """
    out = tmp_path / "full.h5"
    limit = 1_300_000
    proc = _cli(
        "record",
        "--duration",
        "90",
        "--out",
        str(out),
        timeout=150,
        preexec_fn=_limit_file_size(limit),
    )
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("recall-lab record: error: the disk holding")
    assert "everything recorded until now is kept" in line
    assert out.stat().st_size <= limit
    with pytest.warns(UnclosedSessionWarning):
        s = read_session(out)
    assert s.eeg.duration > 5  # it stopped mid-recording
    assert "full" in s.attrs["stop_reason"] and not s.clean_close
    n_said = int(proc.stdout.split("samples")[0].split()[-1])
    assert s.eeg.n_samples == n_said  # the summary line counts what the file holds
    val = _cli("validate", str(out))
    assert val.returncode == 0
    assert "recording stopped early" in val.stdout
