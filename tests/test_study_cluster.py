"""A lab's batch cluster from the ``cluster:`` section of ``study.yaml`` (dask-jobqueue): the
job script it submits, its checks, and a clear line where the submit command is missing."""

from __future__ import annotations

import shutil

import pytest
import yaml

from app.cli import main
from data_schema.errors import ConfigError
from decoding.cluster import cluster_settings, make_cluster
from decoding.simulate import SimulationSettings, simulate_session

SLURM = {
    "kind": "slurm",
    "queue": "gpu",
    "account": "affect-lab",
    "cores": 4,
    "memory": "16GB",
    "walltime": "04:00:00",
    "gpus": 1,
    "jobs": 10,
    "job_extra": ["--constraint=a100"],
}


def test_the_slurm_job_script_asks_for_what_the_study_says():
    s = cluster_settings({"cluster": SLURM})
    cluster = make_cluster(s)  # a real dask-jobqueue cluster; nothing is submitted
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    lines = script.splitlines()
    assert "#SBATCH -p gpu" in lines and "#SBATCH -A affect-lab" in lines
    assert "#SBATCH -t 04:00:00" in lines and "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --gres=gpu:1" in lines and "#SBATCH --constraint=a100" in lines
    assert any(line.startswith("#SBATCH --mem=") for line in lines)
    worker = next(line for line in lines if "distributed.cli.dask_worker" in line)
    # Four single-threaded workers per job, each offering the job's GPU to GPU tasks.
    assert "--nworkers 4" in worker and "--nthreads 1" in worker
    assert "--resources GPU=1" in worker


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"kind": "condor"}, "cluster.kind 'condor'"),
        ({"cores": 0}, "cluster.cores must be a whole number >= 1"),
        ({"gpus": -1}, "cluster.gpus must be a whole number >= 0"),
        ({"nodes": 3}, "cluster.nodes is not a setting"),
        ({"job_extra": "--exclusive"}, "cluster.job_extra must be a list"),
    ],
)
def test_a_bad_cluster_section_is_named(section, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        cluster_settings({"cluster": section})


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real SLURM login node")
def test_without_sbatch_study_decode_says_where_to_run_it(tmp_path, capsys):
    short = {"duration": 40.0, "n_channels": 4, "sfreq": 125.0, "recall": 15.0, "baseline": 5.0}
    files = [
        simulate_session(
            tmp_path / f"p{i}.h5", SimulationSettings(seed=i, participant_id=f"P0{i}", **short)
        )
        for i in range(2)
    ]
    root = tmp_path / "study"
    assert main(["study", "init", str(root)]) == 0
    assert main(["study", "add", str(root), *map(str, files)]) == 0
    meta = yaml.safe_load((root / "study.yaml").read_text())
    (root / "study.yaml").write_text(yaml.safe_dump({**meta, "cluster": SLURM}))
    capsys.readouterr()
    rc = main(["study", "decode", str(root), "--preset", "quick"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1
    assert "'sbatch' is not on this machine" in err[0] and "--jobs N" in err[0]
    assert not (root / "derivatives").exists()
