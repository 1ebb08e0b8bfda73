"""The drivers benchmark runs end to end with tiny parameters and writes well-formed results.

It checks that the script works and that its correctness figures hold (playback in order and
finished, a gap detected); speeds are what the script reports, never what a test demands.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_drivers_small_run_writes_its_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_drivers.py"),
            "--seconds",
            "3",
            "--trials",
            "1",
            "--results-dir",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "drivers.json").read_text())
    figures = doc["sections"]["live_sources"]["figures"]
    assert len(figures["gaps"]["detect_s"]) == 1
    assert figures["gaps"]["detect_s"][0] < 10
    for stamps in ("recorded", "playback"):
        assert figures["playback"][stamps]["in_order"] is True
        assert figures["playback"][stamps]["finished"] is True
    assert figures["dejitter"]["ours"]["samples"] > 0
    assert "Live sources" in (tmp_path / "drivers.md").read_text()
