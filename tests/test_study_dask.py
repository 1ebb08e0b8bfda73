"""``recall-lab study decode`` on Dask: a real scheduler and two real worker processes on
loopback, one of them killed mid-run; the results must equal a serial run's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli import main
from data_schema.progress import PREFIX
from decoding.simulate import SimulationSettings, simulate_session

pytestmark = [
    pytest.mark.timeout(300),
    # CEBRA's import warns about torch.jit.script and about pandas; not ours to fix.
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:pandas module was not found:ImportWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
DASK = Path(sys.executable).parent / "dask"
CONFIG = """\
decoders: [bandpower_logreg, cebra_behavior_knn, cebra_time_knn]
cebra:
  max_iterations: 60
  consistency_runs: 0
evaluation:
  n_permutations: 9
  n_permutations_refit: 2
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("dask")
    files = [
        simulate_session(
            d / f"p{i}.h5",
            SimulationSettings(
                seed=i,
                participant_id=f"P0{i}",
                duration=90.0,
                n_channels=6,
                sfreq=125.0,
                recall=30.0,
                baseline=10.0,
                effect=1.0,
            ),
        )
        for i in range(3)
    ]
    # A participant without valence reports: left out with a reason, the others decoded.
    silent = simulate_session(
        d / "silent.h5",
        SimulationSettings(seed=7, participant_id="P09", duration=40.0, n_channels=6,
                           sfreq=125.0, recall=15.0, baseline=5.0, miss_rate=1.0),
    )  # fmt: skip
    root = d / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), *map(str, files), str(silent)]) == 0
    (d / "decode.yaml").write_text(CONFIG)
    return root


def _copy(study: Path, dest: Path) -> Path:
    shutil.copytree(study, dest)
    return dest


def _metrics(root: Path) -> dict:
    summary = json.loads(
        next((root / "derivatives/decoding/runs").glob("run-*/summary.json")).read_text()
    )
    return {
        sub: {name: (m["f1_weighted"], m["chance_f1_weighted"], m["p_value"])
              for name, m in r["decoders"].items()}
        for sub, r in summary["participants"].items()
    }  # fmt: skip


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


def test_a_study_decodes_the_same_serially_and_on_a_cluster_that_loses_a_worker(
    study, tmp_path, capsys
):
    config = study.parent / "decode.yaml"
    serial = _copy(study, tmp_path / "serial")
    assert main(["study", "decode", str(serial), "--config", str(config), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 participant(s) to decode" in out and "left out sub-P09" in out
    assert "no valence reports" in out
    # Per participant: 5 blocks; bandpower 5 + 1 leaky, CEBRA-Behavior 5 x (1 + 2 refits) + 1,
    # CEBRA-Time 5 + 1.
    assert "about 84 model fits in all" in out
    expected = _metrics(serial)
    assert sorted(expected) == ["P00", "P01", "P02"]

    cluster = _copy(study, tmp_path / "cluster")
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [str(DASK), "scheduler", "--scheduler-file", str(sched_file), "--port", "0",
             "--host", "127.0.0.1", "--no-dashboard"],
            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.2)
        workers = [
            subprocess.Popen(
                [str(DASK), "worker", "--scheduler-file", str(sched_file), "--nworkers", "1",
                 "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]  # fmt: skip
        procs += workers
        job = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "study", "decode", str(cluster), "--config",
             str(config), "--scheduler-file", str(sched_file), "--progress", "json"],
            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        )  # fmt: skip
        lines = []
        for line in job.stdout:
            lines.append(line)
            if line.startswith(PREFIX) and json.loads(line[len(PREFIX) :]).get("event") == "step":
                break  # the tasks are submitted
        time.sleep(2.0)  # ... and running: one worker dies in the middle of its task
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        lines += job.stdout.readlines()
        assert job.wait(240) == 0, "".join(lines)
        job.stdout.close()
        assert job.poll() == 0 and workers[0].returncode == -signal.SIGKILL
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
    text = "".join(lines)
    assert "ran on the scheduler in" in text
    # The task of the worker that died ran again on the other: every participant decoded once,
    # with the serial run's figures.
    assert _metrics(cluster) == expected
    for sub in ("P00", "P01", "P02"):
        reports = list((cluster / "derivatives/decoding" / f"sub-{sub}").glob("run-*"))
        assert len(reports) == 1, reports
    assert main(["study", "status", str(cluster)]) == 0
    status = capsys.readouterr().out
    assert status.count("decoded (1 run(s))") == 3


def test_a_scheduler_that_does_not_answer_is_one_line_and_nothing_is_written(
    study, tmp_path, capsys
):
    root = _copy(study, tmp_path / "s")
    before = {p: p.read_bytes() for p in root.rglob("*.h5")}
    rc = main(["study", "decode", str(root), "--scheduler", "tcp://127.0.0.1:9", "--jobs", "2"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler tcp://127.0.0.1:9" in err[0]
    assert {p: p.read_bytes() for p in root.rglob("*.h5")} == before
    assert not (root / "derivatives").exists()
