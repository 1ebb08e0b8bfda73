"""The command line with live sources: ``recall-lab record`` faults, ``recall-lab boards``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pylsl
import pytest

from data_schema.reader import read_session
from drivers.clock import configure_liblsl

configure_liblsl()


def recall_lab(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, *expected: str) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("recall-lab record: error: ")
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.mark.timeout(60)
def test_record_from_a_stream_that_is_not_there_fails_cleanly_and_creates_no_file(
    tmp_path, unique_id
):
    out = tmp_path / "never.h5"
    proc = recall_lab(
        "record", "--source", f"lsl:nonexistent-{unique_id}", "--duration", "1", "--out", str(out)
    )
    _assert_one_line_error(proc, f"name=nonexistent-{unique_id}", "no LSL stream")
    assert not out.exists()


@pytest.mark.timeout(60)
def test_record_from_a_board_that_does_not_connect_fails_cleanly_and_creates_no_file(tmp_path):
    out = tmp_path / "never.h5"
    proc = recall_lab(
        "record",
        "--source",
        "brainflow:cyton?serial_port=/dev/ttyNONEXIST",
        "--duration",
        "1",
        "--out",
        str(out),
    )
    _assert_one_line_error(proc, "cyton", "/dev/ttyNONEXIST")
    assert not out.exists()


@pytest.mark.timeout(60)
def test_record_an_lsl_stream_from_the_command_line(tmp_path, unique_id):
    rate = 200.0
    info = pylsl.StreamInfo(f"cli-{unique_id}", "EEG", 2, rate, pylsl.cf_double64, unique_id)
    outlet = pylsl.StreamOutlet(info)
    stop = threading.Event()
    pushed = []

    def push() -> None:
        # Wait for the recorder's inlet, then send counting samples until told to stop.
        outlet.wait_for_consumers(timeout=30)
        count = 0
        while not stop.is_set():
            chunk = np.column_stack([np.arange(count, count + 10), np.zeros(10)])
            outlet.push_chunk(chunk)
            pushed.append(count + 10)
            count += 10
            time.sleep(10 / rate)

    pusher = threading.Thread(target=push)
    pusher.start()
    out = tmp_path / "cli.h5"
    try:
        proc = recall_lab(
            "record",
            "--source",
            f"lsl:source_id={unique_id}?markers=none&timeout=10",
            "--duration",
            "2",
            "--out",
            str(out),
        )
    finally:
        stop.set()
        pusher.join()
    assert proc.returncode == 0, proc.stderr
    eeg = read_session(out).streams["eeg"]
    # Everything sent while the recorder listened, in order, from the first sample on.
    assert eeg.n_samples >= 0.5 * rate
    np.testing.assert_array_equal(eeg.data[:, 0], np.arange(eeg.n_samples))
    assert eeg.info.source == f"lsl:cli-{unique_id}"
    assert "lost 0 samples" in proc.stdout


def test_boards_json_lists_brainflow_boards():
    proc = recall_lab("boards", "--json")
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    boards = {b["name"]: b for b in listing["brainflow"]}
    assert boards["synthetic"]["id"] == -1
    assert boards["synthetic"]["rate"] == 250
    assert "serial_port" in boards["cyton"]["needs"]
    assert "lsl" not in listing


def test_boards_lsl_shows_the_streams_on_the_network(unique_id):
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"shown-{unique_id}", "EEG", 3, 300, pylsl.cf_float32, unique_id)
    )
    proc = recall_lab("boards", "--lsl", "--json", "--wait", "1.5")
    assert proc.returncode == 0, proc.stderr
    mine = [s for s in json.loads(proc.stdout)["lsl"] if s["source_id"] == unique_id]
    assert [(s["name"], s["channels"], s["rate"]) for s in mine] == [
        (f"shown-{unique_id}", 3, 300.0)
    ]
    table = recall_lab("boards", "--lsl", "--wait", "1.5")
    assert f"shown-{unique_id}" in table.stdout
    assert "synthetic" in table.stdout
    del outlet
