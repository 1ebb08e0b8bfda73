"""Slow decoding checks: null calibration over many seeds, a demo session end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from decoding.config import DecodeConfig
from decoding.pipeline import decode_sessions
from decoding.results import read_decoded_trajectory
from decoding.simulate import SimulationSettings, simulate_session

# See tests/test_decoding_pipeline.py: CEBRA's torch.jit.script and optional pandas warnings.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pandas module was not found:ImportWarning"),
]


@pytest.mark.timeout(1800)
def test_null_data_p_values_are_calibrated_over_seeds(tmp_path) -> None:
    """On 20 null sessions at most 3 reach p <= 0.05 (a valid test expects 1 in 20; the
    allowance keeps the check from failing by chance: P(>3 of 20 | valid) < 2%)."""
    cfg = DecodeConfig()
    cfg.decoders = ["bandpower_logreg", "cebra_time_knn"]
    cfg.cebra.consistency_runs = 0
    cfg.evaluation.n_permutations = 39
    significant = {n: 0 for n in cfg.decoders}
    for seed in range(200, 220):
        s = SimulationSettings(effect=0.0, seed=seed, duration=150, n_channels=8, sfreq=250)
        path = simulate_session(tmp_path / f"null-{seed}.h5", s)
        cfg.evaluation.seed = seed  # independent label shifts for each null session
        out = decode_sessions([path], cfg, write=False, report=False)
        for name, m in out.summary["decoders"].items():
            significant[name] += m["p_value"] <= 0.05
    assert all(v <= 3 for v in significant.values()), significant


@pytest.mark.timeout(1200)
def test_decode_runs_on_a_demo_session(tmp_path, capsys) -> None:
    """``recall-lab demo`` (BrainFlow synthetic board, simulated participant) then decode."""
    session = tmp_path / "demo.h5"
    cmd = [sys.executable, "-m", "app.cli", "demo", "--out", str(session), "--no-offline"]
    proc = subprocess.run(
        [*cmd, "--time-scale", "0.4", "--quiet"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "cebra": {"max_iterations": 50, "consistency_runs": 2},
                "evaluation": {"n_permutations": 9, "n_permutations_refit": 2},
            }
        )
    )
    assert main(["decode", str(session), "--config", str(config), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["runs"][str(session)] == "/derived/decoding/run-001"
    notes = summary["notes"][str(session)]
    assert any("baseline channel means subtracted" in n for n in notes)
    traj = read_decoded_trajectory(session)
    assert traj.times.size == summary["n_windows"] and (traj.fold >= 0).all()
