"""A lab's batch cluster for a study's tasks: the ``cluster:`` section of ``study.yaml``,
started through dask-jobqueue (SLURM, PBS, SGE or LSF).

Example (``STUDY/study.yaml``)::

    cluster:
      kind: slurm
      queue: gpu            # partition
      account: my-lab       # optional
      cores: 4              # per job: that many single-threaded worker processes
      memory: 16GB          # per job
      walltime: "04:00:00"
      gpus: 1               # per job: --gres=gpu:N and the workers' GPU resource
      jobs: 10              # jobs to keep running while the study decodes
      job_extra: ["--constraint=a100"]   # more #SBATCH (or #PBS...) lines
      python: /shared/envs/recall-lab/bin/python   # on the nodes (default: this one)

``recall-lab study decode STUDY`` uses it when no ``--jobs``, ``--scheduler`` or
``--scheduler-file`` is given. It runs where the scheduler's submit command is (a login node);
the nodes need recall-lab installed and the study on a shared file system.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field, fields
from typing import Any

from data_schema.errors import ConfigError, RecallLabError

#: kind -> (dask-jobqueue class name, the command that submits jobs)
KINDS = {
    "slurm": ("SLURMCluster", "sbatch"),
    "pbs": ("PBSCluster", "qsub"),
    "sge": ("SGECluster", "qsub"),
    "lsf": ("LSFCluster", "bsub"),
}


@dataclass
class ClusterSettings:
    """The ``cluster:`` section of ``study.yaml``."""

    kind: str = "slurm"
    queue: str | None = None
    account: str | None = None
    cores: int = 1
    memory: str = "4GB"
    walltime: str = "01:00:00"
    gpus: int = 0
    jobs: int = 1
    job_extra: list[str] = field(default_factory=list)
    python: str | None = None


def cluster_settings(meta: dict[str, Any], where: str = "study.yaml") -> ClusterSettings | None:
    """The study's cluster section, checked (one-line :class:`ConfigError`), or None."""
    raw = meta.get("cluster")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: cluster must be a mapping of settings (kind, queue, ...)")
    known = {f.name for f in fields(ClusterSettings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{where}: cluster.{unknown[0]} is not a setting; known: {', '.join(sorted(known))}"
        )
    s = ClusterSettings(**raw)
    if s.kind not in KINDS:
        raise ConfigError(f"{where}: cluster.kind {s.kind!r}; use {', '.join(KINDS)}")
    for name in ("cores", "jobs"):
        v = getattr(s, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{where}: cluster.{name} must be a whole number >= 1, not {v!r}")
    if not isinstance(s.gpus, int) or isinstance(s.gpus, bool) or s.gpus < 0:
        raise ConfigError(f"{where}: cluster.gpus must be a whole number >= 0, not {s.gpus!r}")
    if not isinstance(s.job_extra, list) or not all(isinstance(x, str) for x in s.job_extra):
        raise ConfigError(f"{where}: cluster.job_extra must be a list of lines")
    for name in ("memory", "walltime"):
        if not isinstance(getattr(s, name), str):
            raise ConfigError(f"{where}: cluster.{name} must be text, e.g. 16GB or '04:00:00'")
    return s


def make_cluster(s: ClusterSettings) -> Any:
    """The dask-jobqueue cluster for ``s`` (its scheduler runs here; no job submitted yet)."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, KINDS[s.kind][0])
    directives = list(s.job_extra)
    if s.gpus and s.kind == "slurm":
        directives.append(f"--gres=gpu:{s.gpus}")
    kwargs: dict[str, Any] = {
        "cores": s.cores,
        "processes": s.cores,  # single-threaded workers, as every study task expects
        "memory": s.memory,
        "walltime": s.walltime,
        "queue": s.queue,
        "job_extra_directives": directives,
        "python": s.python or sys.executable,
        "worker_extra_args": ["--resources", f"GPU={s.gpus}"] if s.gpus else [],
        "job_name": "recall-lab",
    }
    if s.account:
        kwargs["account" if s.kind in ("slurm", "pbs") else "project"] = s.account
    return cls(**kwargs)


def start_cluster(s: ClusterSettings) -> tuple[Any, Any, str]:
    """(client, cluster, description): the cluster with ``s.jobs`` jobs asked for."""
    from distributed import Client

    submit = KINDS[s.kind][1]
    if shutil.which(submit) is None:
        raise RecallLabError(
            f"study.yaml asks for a {s.kind.upper()} cluster but '{submit}' is not on this "
            "machine: run study decode on the cluster's login node, or pass --jobs N to run "
            "here (or --scheduler for a running Dask cluster)"
        )
    cluster = make_cluster(s)
    cluster.scale(jobs=s.jobs)
    return (
        Client(cluster),
        cluster,
        f"a {s.kind.upper()} cluster of {s.jobs} job(s) x {s.cores} worker(s)"
        + (f" with {s.gpus} GPU(s) each" if s.gpus else ""),
    )
