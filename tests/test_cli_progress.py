"""Progress and cancellation of the long commands, as the console sees them.

``recall-lab decode`` and ``generate`` run in their own process (as the console starts them)
with ``--progress json``; the test reads their ``@progress`` lines while they run and sends
SIGTERM as the console's Cancel does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from test_generation_helpers import write_session

from app.cli import main
from data_schema.progress import PREFIX
from decoding.simulate import SimulationSettings, simulate_session

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.filterwarnings("ignore::FutureWarning:diffusers"),
]

ROOT = Path(__file__).resolve().parents[1]


class Job:
    """``recall-lab <args>`` in a process of its own; its ``@progress`` lines, parsed."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.events: list[dict] = []
        self.other: list[str] = []

    def read_until(self, predicate, timeout: float) -> dict | None:
        """Read lines until an event satisfies ``predicate`` (returns it) or the job ends."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                return None
            if line.startswith(PREFIX):
                ev = json.loads(line[len(PREFIX) :])
                self.events.append(ev)
                if predicate(ev):
                    return ev
            elif line.strip():
                self.other.append(line.rstrip())
        raise AssertionError(f"no such event within {timeout} s; last: {self.events[-3:]}")

    def finish(self, timeout: float = 120) -> int:
        try:
            self.read_until(lambda ev: False, timeout)
            return self.proc.wait(timeout)
        finally:
            self.proc.stdout.close()

    def steps(self, name: str) -> list[tuple[int, int]]:
        return [(e["done"], e["total"]) for e in self.events if e.get("name") == name]


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("progress")
    return simulate_session(
        d / "sim.h5",
        SimulationSettings(
            effect=1.0, seed=3, duration=120.0, n_channels=8, sfreq=250.0, recall=30.0
        ),
    )


def _copy(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes())
    return dst


def _config(tmp_path: Path, iterations: int, permutations: int) -> Path:
    cfg = tmp_path / "decode.yaml"
    cfg.write_text(
        f"decoders: [bandpower_logreg, cebra_behavior_knn]\n"
        f"cebra:\n  max_iterations: {iterations}\n  consistency_runs: 0\n"
        f"evaluation:\n  n_permutations: {permutations}\n  n_permutations_refit: 1\n"
    )
    return cfg


def test_decode_reports_every_fit_and_its_finished_report_folder(sim, tmp_path):
    path = _copy(sim, tmp_path / "s.h5")
    job = Job(
        ["decode", str(path), "--config", str(_config(tmp_path, 30, 4)), "--progress", "json"],
        tmp_path,
    )
    assert job.finish() == 0, job.other
    plan = next(e for e in job.events if e["event"] == "plan")["steps"]
    assert plan == [
        "read and preprocess",
        "bandpower_logreg",
        "cebra_behavior_knn",
        "write results",
    ]
    for name in plan:
        counts = job.steps(name)
        done = [d for d, _ in counts]
        assert done == sorted(done) and counts[-1][0] == counts[-1][1] > 0, (name, counts)
    # Every fitted fold counts (5 blocked folds, and the leaky protocol's one fit); CEBRA-
    # Behavior learns from the labels, so each permutation refits it and counts too.
    assert job.steps("bandpower_logreg")[-1][1] == 5 + 1
    assert job.steps("cebra_behavior_knn")[-1][1] == 5 * (1 + 1) + 1
    folder = Path(next(e for e in job.events if e["event"] == "folder")["path"])
    assert folder.name == "run-001" and (folder / "metrics.json").is_file()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".run-partial")]


def test_sigterm_cancels_decode_and_keeps_nothing(sim, tmp_path):
    path = _copy(sim, tmp_path / "s.h5")
    before = path.read_bytes()
    job = Job(
        ["decode", str(path), "--config", str(_config(tmp_path, 3000, 50)), "--progress", "json"],
        tmp_path,
    )
    job.read_until(lambda e: e.get("name") == "cebra_behavior_knn", 120)
    t = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)
    assert job.finish() == 130
    assert time.monotonic() - t < 10  # stops within a moment, not after the fit
    assert any("cancelled" in line for line in job.other), job.other
    assert path.read_bytes() == before  # the session file was never touched
    assert not Path(f"{path}.decoding").exists()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models") / "models"
    assert main(["models", "make-tiny", str(d)]) == 0
    return d


def _generate_args(session: Path, models: Path, *extra: str) -> list[str]:
    return [
        "generate",
        str(session),
        "--models",
        str(models),
        "--fps",
        "8",
        "--crossfade",
        "0.5",
        "--transition",
        "0.5",
        "--progress",
        "json",
        *extra,
    ]


def test_generate_counts_diffusion_steps_and_frames_and_lists_its_folder(tiny_models, tmp_path):
    session = write_session(tmp_path / "g.h5", recall=6.0)
    job = Job(_generate_args(session, tiny_models, "--steps", "3", "--animation", "none"), tmp_path)
    assert job.finish(240) == 0, job.other
    plan = next(e for e in job.events if e["event"] == "plan")["steps"]
    # Morph (the default transition) paints in-between keyframes in a step of its own.
    assert plan == ["keyframes", "transitions", "music", "video", "scores", "write results"]
    for name in plan:
        counts = job.steps(name)
        assert counts and counts[-1][0] == counts[-1][1] > 0, (name, counts)
    folder = Path(next(e for e in job.events if e["event"] == "folder")["path"])
    manifest = json.loads(next(folder.rglob("manifest.json")).read_text())
    n_segments = len(manifest["segments"])
    # The sketch makes the keyframes img2img: strength x 3 steps each, counted as they ran.
    assert job.steps("keyframes")[-1][1] % n_segments == 0
    assert job.steps("video")[-1][1] == round(manifest["total_seconds"] * 8)
    with h5py.File(session, "r") as f:
        run = f["derived/generation/run-001"]
        assert run.attrs["output_folder"] == str(folder)


def test_sigterm_cancels_generate_and_leaves_no_folder_and_no_run(tiny_models, tmp_path):
    session = write_session(tmp_path / "g.h5", recall=6.0)
    before = session.read_bytes()
    out = tmp_path / "out"
    job = Job(_generate_args(session, tiny_models, "--steps", "3", "--out", str(out)), tmp_path)
    workdir = job.read_until(lambda e: e["event"] == "workdir", 120)
    job.read_until(lambda e: e.get("name") == "music" and e["done"] > 0, 120)
    assert Path(workdir["path"]).is_dir()  # keyframes were written into it
    job.proc.send_signal(signal.SIGTERM)
    assert job.finish() == 130
    assert any("cancelled" in line for line in job.other), job.other
    assert not out.exists()  # made by this run, so removed with its partial folder
    assert session.read_bytes() == before


def test_the_newest_run_is_the_highest_number_and_never_a_partial_one(tmp_path):
    from data_schema.progress import PARTIAL_PREFIX, latest_run_summary, run_folder

    runs = tmp_path / "runs"
    for n in (998, 999):
        (runs / f"run-{n}").mkdir(parents=True)
        (runs / f"run-{n}" / "summary.json").write_text(json.dumps({"n": n}))
    with run_folder(runs) as folder:  # the 1000th run: after run-999, not before it
        (folder.partial / "summary.json").write_text(json.dumps({"n": 1000}))
        # a job still writing is not a run yet
        assert latest_run_summary(runs) == ("run-999", {"n": 999})
    assert folder.final.name == "run-1000"
    (runs / f"{PARTIAL_PREFIX}123").mkdir()
    (runs / f"{PARTIAL_PREFIX}123" / "summary.json").write_text(json.dumps({"n": 0}))
    assert latest_run_summary(runs) == ("run-1000", {"n": 1000})
    assert latest_run_summary(tmp_path / "none") is None
