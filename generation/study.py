"""Generate the reconstructions of a whole study: one task per memory, on Dask (local by
default, a running cluster, or the study's batch cluster), as ``recall-lab study decode`` runs
its tasks.

Every session with memories gets a new ``STUDY/derivatives/generation/sub-<label>/<session
file stem>/run-NNN/<memory>/`` (the same files ``recall-lab generate`` writes), and the run is
recorded in the session file (``/derived/generation/run-NNN``) as ``generate`` records it. A
task writes its memory's media into the session's hidden ``.run-partial-<pid>`` folder (media
are large: they are written where the workers are, on the study's shared file system) and
starts by emptying its own memory folder, so a task that Dask runs again after a worker died
starts clean. Only the process that submitted the tasks publishes a session's folder (renamed
to ``run-NNN`` once all its memories are made) and writes into the session file; a session
with a failed memory gets nothing and is reported, the others go on. A cancel removes every
unpublished folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_schema.errors import Cancelled, RecallLabError
from data_schema.progress import PARTIAL_PREFIX, Progress, remove_partial, run_folder
from generation.pipeline import GenerateConfig

log = logging.getLogger(__name__)


@dataclass
class SessionPlan:
    """One session's memories to generate, and where."""

    path: Path
    subject: str
    memories: list[str]
    root: Path  # STUDY/derivatives/generation/sub-X/<stem>
    partial: Path | None = None


@dataclass
class StudyGenerateResult:
    """What a study generation did, session by session."""

    folder: Path | None
    where: str
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> list[str]:
        return [f for f, r in self.sessions.items() if r["status"] != "ok"]


def plan_study_generate(study: Any) -> tuple[list[SessionPlan], dict[str, str]]:
    """Sessions with memories (and valence reports to drive them); the rest with why."""
    from data_schema.reader import read_session
    from decoding.study import study_status

    plans, skipped = [], {}
    out = study.root / "derivatives" / "generation"
    for st in study_status(study):
        if not st.ok:
            skipped[st.file] = st.problem
            continue
        path = study.root / st.file
        try:
            memories = sorted(read_session(path).memories)
        except Exception as exc:  # a file status could read but not as a session
            skipped[st.file] = str(exc).splitlines()[0]
            continue
        if not memories:
            skipped[st.file] = "no memories: nothing to reconstruct"
        elif st.valence_reports == 0:
            skipped[st.file] = "no valence reports: no affect to follow"
        else:
            plans.append(
                SessionPlan(path, st.subject, memories, out / f"sub-{st.subject}" / path.stem)
            )
    return plans, skipped


def generate_task(session_path: str, memory: str, cfg: GenerateConfig, folder: str) -> Any:
    """Task: make one memory's reconstruction in ``folder`` (emptied first: a rerun after a
    lost worker starts clean). Returns the ``MemoryResult``."""
    from data_schema.reader import read_session
    from decoding.study import tune_allocator
    from generation.pipeline import generate_memory

    tune_allocator()
    target = Path(folder)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    session = read_session(session_path)
    return generate_memory(session, memory, cfg, target, threading.Event(), Progress("none"))


def run_study_generate(
    study: Any,
    cfg: GenerateConfig,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    progress: Progress | None = None,
) -> StudyGenerateResult:
    """Generate every memory of every session of ``study`` (see the module docstring)."""
    from decoding.cluster import cluster_settings
    from decoding.study import runs_here
    from generation.animation import choose_animation
    from generation.models import models_dir, require_model

    prog = progress or Progress("none")
    if jobs is not None and jobs < 1:
        raise RecallLabError("--jobs must be at least 1")
    batch = cluster_settings(study.meta, str(study.root / "study.yaml"))
    # Missing models and bad settings stop here, before any task or folder.
    require_model("stable-diffusion", cfg.models)
    require_model("musicgen-melody", cfg.models)
    cfg.animation.check()
    choose_animation(cfg.animation.choice, cfg.models)
    cfg.models = models_dir(cfg.models)
    plans, skipped = plan_study_generate(study)
    if not plans:
        raise RecallLabError(
            f"{study.root}: no session with memories and valence reports to reconstruct"
            + (f" ({len(skipped)} file(s) left out)" if skipped else "")
        )
    result = StudyGenerateResult(None, "serial", skipped=skipped)
    tasks = [(plan, m) for plan in plans for m in plan.memories]
    prog.plan(["memories"])
    step = prog.step("memories", len(tasks), "memory")
    for plan in plans:
        plan.root.mkdir(parents=True, exist_ok=True)
        plan.partial = plan.root / f"{PARTIAL_PREFIX}{os.getpid()}"
        if plan.partial.exists():
            shutil.rmtree(plan.partial)
        plan.partial.mkdir()
    done: dict[Path, dict[str, Any]] = {plan.path: {} for plan in plans}
    errors: dict[Path, str] = {}

    def settle(plan: SessionPlan, memory: str, ok: bool, value: Any) -> None:
        """A memory's task ended (its count already taken off ``tasks_left``)."""
        if ok:
            done[plan.path][memory] = value
        else:
            errors.setdefault(plan.path, f"memory {memory}: {value}")
        step.update(1)
        if tasks_left[plan.path] == 0:
            _finish(plan, done[plan.path], errors.get(plan.path), cfg, study, result, prog)

    tasks_left: dict[Path, int] = {plan.path: len(plan.memories) for plan in plans}
    started = time.time()
    serial = runs_here(jobs, scheduler, scheduler_file)
    try:
        if serial:
            for plan, memory in tasks:
                prog.check()
                tasks_left[plan.path] -= 1
                settle(plan, memory, *_attempt(plan, memory, cfg))
        else:
            result.where = _run_on_dask(
                tasks, cfg, (jobs, scheduler, scheduler_file, batch), prog, settle, tasks_left
            )
    except BaseException:
        for plan in plans:
            remove_partial(plan.partial)
        raise
    step.close()
    summary = {
        "study": study.name,
        "where": result.where,
        "seconds": round(time.time() - started, 2),
        "config": cfg.to_json(),
        "sessions": result.sessions,
        "skipped": skipped,
    }
    runs = study.root / "derivatives" / "generation" / "runs"
    with prog.committing(), run_folder(runs, prog) as f:
        (f.partial / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    result.folder = f.final
    return result


def _attempt(plan: SessionPlan, memory: str, cfg: GenerateConfig) -> tuple[bool, Any]:
    try:
        return True, generate_task(str(plan.path), memory, cfg, str(plan.partial / memory))
    except Cancelled:
        raise
    except Exception as exc:
        return False, _reason(exc)


def _reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, RecallLabError) else f"{type(exc).__name__}: {exc}"


def _finish(plan, results: dict, error: str | None, cfg, study, result, prog) -> None:
    """Publish a session's folder and record the run in its file, or drop it on an error."""
    from data_schema.progress import _publish
    from generation.pipeline import _moved, _record_run

    rel = str(plan.path.relative_to(study.root))
    if error is not None:
        remove_partial(plan.partial)
        result.sessions[rel] = {"status": "failed", "reason": error}
        log.warning("%s: %s", rel, error)
        return
    with prog.committing():
        final = _publish(plan.partial, plan.root)
        moved = [_moved(results[m], plan.partial, final) for m in plan.memories]
        _record_run(plan.path, cfg, final, moved)
    result.sessions[rel] = {
        "status": "ok",
        "subject": plan.subject,
        "folder": str(final.relative_to(study.root)),
        "videos": {r.memory: str(r.video.relative_to(study.root)) for r in moved},
    }


def _run_on_dask(tasks, cfg, where_args, prog, settle, tasks_left) -> str:
    from distributed import as_completed

    from decoding.study import connect

    client, cluster, where = connect(*where_args)
    workers = client.scheduler_info().get("workers", {}).values()
    gpu = any("GPU" in (w.get("resources") or {}) for w in workers)
    futures = {}
    try:
        for plan, memory in tasks:
            fut = client.submit(
                generate_task,
                str(plan.path),
                memory,
                cfg,
                str(plan.partial / memory),
                key=f"recall-lab-generate-{plan.path.stem}-{memory}-{os.getpid()}-{time.time_ns()}",
                retries=2,
                pure=False,
                **({"resources": {"GPU": 1}} if gpu else {}),
            )
            futures[fut] = (plan, memory)
        for fut in as_completed(futures):
            prog.check()
            plan, memory = futures[fut]
            tasks_left[plan.path] -= 1
            try:
                value = (True, fut.result())
            except Cancelled:
                raise
            except Exception as exc:
                value = (False, _reason(exc))
            settle(plan, memory, *value)
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return where
