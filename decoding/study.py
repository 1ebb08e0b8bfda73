"""Decode a whole study: one task per participant, on Dask (local by default, or a cluster).

Each participant's sessions are decoded together exactly as ``recall-lab decode`` does it
(honest splits within the participant, permutation chance, the leaky protocol beside it). The
work of a participant is a Dask task that only *computes*: it reads the session files and
returns the outcome. Everything is written by the one process that submitted the tasks, after a
task's result arrived: the run in each session file (``/derived/decoding/run-NNN``), the
participant's report (``STUDY/derivatives/decoding/sub-<label>/run-NNN``) and the study run's
summary (``STUDY/derivatives/decoding/runs/run-NNN/summary.json``). So a worker that dies
mid-task costs only its computation: Dask runs the task again elsewhere, and nothing is written
twice or half. Results do not depend on the number of workers: every task is seeded by the
configuration alone and runs single-threaded.

Where the tasks run:

- ``jobs=1``: here, one after the other, without Dask;
- default: a ``LocalCluster`` of one single-threaded worker process per CPU core (or ``jobs``);
- ``scheduler`` (``tcp://host:8786``), ``scheduler_file``, or the ``DASK_SCHEDULER_ADDRESS``
  environment variable: an existing Dask cluster whose workers can read the study folder (a
  shared file system) and have recall-lab installed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_schema.errors import Cancelled, RecallLabError
from data_schema.progress import Progress, run_folder
from decoding.cluster import ClusterSettings, cluster_settings
from decoding.config import DecodeConfig

log = logging.getLogger(__name__)

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 10.0


class SchedulerError(RecallLabError):
    """A Dask scheduler that cannot be reached or used."""


@dataclass
class ParticipantPlan:
    """One participant's task: the sessions decoded together."""

    subject: str
    paths: list[Path]


@dataclass
class StudyDecodeResult:
    """What a study decode did, participant by participant."""

    folder: Path | None  # the study run's folder (summary.json)
    where: str  # "serial", "local cluster (N workers)", or the scheduler's address
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why
    across: dict[str, Any] | None = None  # figures over all participants (split participants)

    @property
    def failed(self) -> list[str]:
        return [s for s, r in self.participants.items() if r["status"] != "ok"]


@dataclass
class SessionStatus:
    """What ``study status`` says about one session file of a study."""

    file: str
    subject: str
    session: str
    task: str
    run: int
    participant_id: str = ""
    ok: bool = True
    problem: str = ""
    seconds: float = 0.0
    channels: int = 0
    rate: float = 0.0
    valence_reports: int = 0
    # Labels of imported datasets (labels.source trial_labels): trials whose protocol marker
    # carries a valence, and those whose marker names one of EAV's five emotions.
    labelled_trials: int = 0
    emotion_trials: int = 0
    # Listening clips played and rated (SAM valence; labels.source clip_ratings).
    rated_clips: int = 0
    # Memories judged in a preference phase (``recall-lab study preference``).
    preference_judgements: int = 0
    decoding_runs: list[str] = field(default_factory=list)
    generation_runs: list[str] = field(default_factory=list)


def study_status(study: Any) -> list[SessionStatus]:
    """Each session file of ``study``: readable or why not, its size, its labels (valence
    reports, labelled trials, rated clips, as the decoder counts them), its preference
    judgements, and its decoding and generation runs. Never raises for a file."""
    return [session_status(s, study.root) for s in study.sessions()]


def session_status(s: Any, root: Path) -> SessionStatus:
    """One line of ``study status``; a damaged file is reported, never raised."""
    from data_schema.derived import list_derived_runs
    from data_schema.reader import read_session
    from decoding.labels import labelled_trials, rating_samples, valence_presses
    from decoding.listening import clip_plays_from_events

    st = SessionStatus(s.relative(root), s.subject, s.session, s.task, s.run)
    try:
        session = read_session(s.path)
        st.participant_id = session.participant_id
        eeg = session.streams.get("eeg") or next(iter(session.streams.values()), None)
        if eeg is not None and eeg.n_samples:
            st.channels = eeg.info.n_channels
            st.rate = float(eeg.info.nominal_rate)
            st.seconds = float(eeg.timestamps[-1] - eeg.timestamps[0])
        # Key presses and ratings (events or the continuous ``valence`` stream) alike.
        st.valence_reports = len(valence_presses(session.events)) + len(rating_samples(session)[0])
        st.labelled_trials = len(labelled_trials(session.events, "valence")[0])
        st.emotion_trials = len(labelled_trials(session.events, "emotion")[0])
        end = float(eeg.timestamps[-1]) if eeg is not None and eeg.n_samples else 0.0
        plays = clip_plays_from_events(session.events, end)
        st.rated_clips = sum(1 for p in plays if p.valence is not None and not p.error)
        st.preference_judgements = sum(
            1 for _ in session.events_where(source="participant", label="preference_choice")
        )
        st.decoding_runs = list_derived_runs(s.path, "decoding")
        st.generation_runs = list_derived_runs(s.path, "generation")
    except (RecallLabError, OSError) as exc:
        st.ok, st.problem = False, str(exc)
    return st


def labels_held(st: SessionStatus, source: str = "reports", target: str = "valence") -> int:
    """How many labels of ``labels.source`` ``source`` (and ``labels.target`` ``target``) the
    session holds: valence reports, labelled trials, or rated listening clips."""
    if source == "trial_labels":
        return st.emotion_trials if target == "emotion" else st.labelled_trials
    if source == "clip_ratings":
        return st.rated_clips
    return st.valence_reports


def missing_labels(st: SessionStatus, source: str = "reports", target: str = "valence") -> str:
    """Why a session without the labels ``source`` needs cannot be decoded, naming what is
    missing, and what it does hold instead (so the user sees which preset would decode it)."""
    from decoding.labels import class_set

    if source == "trial_labels" and target == "emotion":
        why = (
            "no trials labelled with an emotion: labels.source trial_labels with labels.target "
            "emotion needs protocol phases whose marker names one of "
            f"{', '.join(class_set('emotion').names)} (as imported EAV sessions have)"
        )
    elif source == "trial_labels":
        why = (
            "no labelled trials: labels.source trial_labels needs protocol phases whose marker "
            "carries a valence (as imported EAV sessions have)"
        )
    elif source == "clip_ratings":
        why = (
            "no rated listening clips: labels.source clip_ratings needs clips played by a "
            "listening phase and rated (SAM valence)"
        )
    else:
        why = "no valence reports: nothing to learn or test labels from"
    held = []
    if source != "reports" and st.valence_reports:
        held.append(f"{st.valence_reports} valence report(s) (labels.source: reports)")
    if source != "trial_labels" and st.labelled_trials:
        held.append(
            f"{st.labelled_trials} labelled trial(s) (labels.source: trial_labels, "
            "--preset eav or eav_emotion)"
        )
    if source == "trial_labels" and target == "emotion" and st.labelled_trials:
        held.append(
            f"{st.labelled_trials} trial(s) labelled with a valence (labels.target: valence, "
            "--preset eav)"
        )
    if source != "clip_ratings" and st.rated_clips:
        held.append(f"{st.rated_clips} rated clip(s) (labels.source: clip_ratings)")
    return why + (f"; it holds {' and '.join(held)}" if held else "")


def plan_study_decode(
    study: Any, cfg: DecodeConfig | None = None
) -> tuple[list[ParticipantPlan], dict[str, str]]:
    """The participants to decode, with their readable sessions that hold the labels
    ``cfg.labels`` asks for (``source`` reports: valence reports, the default without
    ``cfg``; trial_labels: trials whose marker carries a valence, or an emotion with
    ``target`` emotion; clip_ratings: rated listening clips); and the files left out, with
    why (a damaged file, or which labels it lacks)."""
    source = cfg.labels.source if cfg is not None else "reports"
    target = cfg.labels.target if cfg is not None else "valence"
    by_subject: dict[str, list[Path]] = {}
    skipped: dict[str, str] = {}
    for st in study_status(study):
        if not st.ok:
            skipped[st.file] = st.problem
        elif labels_held(st, source, target) == 0:
            skipped[st.file] = missing_labels(st, source, target)
        else:
            by_subject.setdefault(st.subject, []).append(study.root / st.file)
    plans = [ParticipantPlan(sub, paths) for sub, paths in sorted(by_subject.items())]
    return plans, skipped


#: Added to a decoder's name for its within-participant figures in a study decoded across
#: participants (``evaluation.within_participant``).
WITHIN_SUFFIX = " (within)"


def estimated_fits(plans: list[ParticipantPlan], cfg: DecodeConfig) -> int:
    """How many models a study decode will fit (shown before it starts): per participant and
    decoder, one per fold, again per permutation for decoders that learn from the labels,
    and one for the leaky protocol. Folds: one per session when a participant has several
    (split auto), else ``n_folds`` blocks."""
    from decoding.decoders import learns_from_labels

    ev = cfg.evaluation
    total = 0
    split = ev.split
    if split == "participants":
        from decoding.study_pooled import pooled_fits

        total = pooled_fits(len(plans), cfg)
        if not ev.within_participant:
            return total
        split = "blocks"
    for plan in plans:
        n_sessions = len(plan.paths)
        if split == "sessions" or (split == "auto" and n_sessions > 1):
            folds = n_sessions
        else:
            folds = ev.n_folds
        for name in cfg.decoders:
            refits = ev.n_permutations_refit if learns_from_labels(name, cfg) else 0
            total += folds * (1 + refits) + int(ev.leaky)
    return total


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.cache
def tune_allocator() -> None:
    """Let glibc keep freed memory for the next array instead of mapping it anew every time.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting any such
    variable switches off glibc's adaptive mmap threshold, so every array above 128 KB is
    mapped and unmapped, and each use faults its pages in again. Decoding allocates such
    arrays constantly (kNN distances, embeddings), and on 2 workers the tasks took 1.6 x as
    long, a third of it in the kernel (measured: sys 66 s against 1 s). Here large arrays come
    from the heap again, and memory is given back above 256 MB of free heap. Only on glibc;
    elsewhere, nothing.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(_M_TRIM_THRESHOLD, 256 * 2**20)
    except (OSError, AttributeError):
        pass


def decode_participant(paths: list[str], cfg_dict: dict[str, Any]) -> Any:
    """The Dask task: decode one participant's sessions and return the outcome (writes
    nothing). Runs in a worker process; the outcome's summary says how long it computed."""
    from threadpoolctl import threadpool_limits

    from decoding.pipeline import decode_sessions

    t0 = time.perf_counter()
    tune_allocator()
    cfg = DecodeConfig.from_dict(cfg_dict)
    cfg.evaluation.n_jobs = 1  # the study's parallelism is across tasks
    cfg.cebra.cpu_threads = 1
    # One BLAS thread too, wherever the task runs (Dask workers start with one, a plain
    # process with one per core): sums in another order change kNN ties and so the figures.
    with threadpool_limits(limits=1):
        outcome = decode_sessions(paths, cfg, progress="none", write=False, report=False)
    outcome.summary["compute_seconds"] = round(time.perf_counter() - t0, 3)
    return outcome


def runs_here(jobs: int | None, scheduler: str | None, scheduler_file: str | None) -> bool:
    """True when tasks run in this process, one after the other (``--jobs 1``, no scheduler)."""
    return jobs == 1 and not (
        scheduler or scheduler_file or os.environ.get("DASK_SCHEDULER_ADDRESS")
    )


def connect(
    jobs: int | None,
    scheduler: str | None,
    scheduler_file: str | None,
    batch: ClusterSettings | None = None,
):
    """(client, cluster or None, description) for where the tasks run: a scheduler named on
    the command line or in the environment, else the study's batch cluster (``batch``,
    unless ``--jobs`` was given), else a local cluster."""
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if batch is not None and not (address or scheduler_file or jobs):
        from decoding.cluster import start_cluster

        return start_cluster(batch)
    try:
        if scheduler_file:
            if not Path(scheduler_file).is_file():
                raise SchedulerError(f"--scheduler-file {scheduler_file}: no such file")
            client = Client(scheduler_file=scheduler_file, timeout=CONNECT_TIMEOUT)
            return client, None, f"the scheduler in {scheduler_file} ({client.scheduler.address})"
        if address:
            client = Client(address, timeout=CONNECT_TIMEOUT)
            return client, None, f"the scheduler at {address}"
    except (OSError, TimeoutError) as exc:
        where = scheduler_file or address
        raise SchedulerError(
            f"cannot reach the Dask scheduler {where} within {CONNECT_TIMEOUT:g} s ({exc}); "
            "check the address and that the scheduler runs, or leave it out to run locally"
        ) from None
    n = jobs or os.cpu_count() or 1
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO lines are noise here
    cluster = LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster, f"a local cluster of {n} worker process(es)"


def run_study_decode(
    study: Any,
    cfg: DecodeConfig,
    *,
    jobs: int | None = None,
    scheduler: str | None = None,
    scheduler_file: str | None = None,
    progress: Progress | None = None,
) -> StudyDecodeResult:
    """Decode every participant of ``study`` (see the module docstring)."""
    from decoding.labels import class_set
    from decoding.report import write_report
    from decoding.results import write_results

    prog = progress or Progress("none")
    if jobs is not None and jobs < 1:
        raise RecallLabError("--jobs must be at least 1")
    batch = cluster_settings(study.meta, str(study.root / "study.yaml"))
    plans, skipped = plan_study_decode(study, cfg)
    if not plans:
        first = next(iter(skipped.values()), "")
        raise RecallLabError(
            f"{study.root}: no session with {_labels_wanted(cfg)} to decode"
            + (f" ({len(skipped)} file(s) left out; the first: {first})" if skipped else "")
        )
    from decoding.pipeline import require_decoder_models

    require_decoder_models(cfg)
    reports = study.root / "derivatives" / "decoding"
    cfg_dict = cfg.to_dict()
    result = StudyDecodeResult(None, "serial")
    across = cfg.evaluation.split == "participants"
    within = not across or cfg.evaluation.within_participant
    # Across participants, the preset may also decode each participant on their own (blocked
    # splits in time): their figures join the participant's entry, named "... (within)".
    within_cfg = DecodeConfig.from_dict(cfg_dict)
    suffix = ""
    if across:
        within_cfg.evaluation.split = "blocks"
        suffix = WITHIN_SUFFIX
    within_dict = within_cfg.to_dict()
    prog.plan(
        (["read and preprocess", "fits"] if across else [])
        + ([f"participants{suffix}"] if within else [])
    )

    def record(plan: ParticipantPlan, outcome: Any) -> None:
        # Only here is anything written, once per participant, after its task succeeded.
        with prog.committing():
            runs = write_results(outcome, within_cfg)
            report = write_report(outcome, within_cfg, reports / f"sub-{plan.subject}")
        decoders = {
            f"{name}{suffix}": {
                **m,
                # For the group statistics: the participant's own permutation null, and the
                # confusion matrix of the honest predictions (rows and columns: the classes).
                "null_f1_weighted": [float(v) for v in outcome.results[name].null_f1],
                "confusion": outcome.results[name].confusion,
                "classes": list(outcome.results[name].classes.codes),
                "class_names": list(outcome.results[name].classes.names),
            }
            for name, m in outcome.summary["decoders"].items()
        }
        entry = result.participants.setdefault(plan.subject, {"status": "ok", "decoders": {}})
        entry.update(
            {
                "sessions": [str(p.relative_to(study.root)) for p in plan.paths],
                "runs": {str(Path(k).relative_to(study.root)): v for k, v in runs.items()},
                "report": str(report.relative_to(study.root)),
                "compute_seconds": outcome.summary.get("compute_seconds"),
            }
        )
        entry.setdefault("n_windows", outcome.summary["n_windows"])
        entry.setdefault("channels", _channels(outcome))
        entry["decoders"].update(decoders)
        step.update(1)

    def failed(plan: ParticipantPlan, exc: BaseException) -> None:
        reason = str(exc) if isinstance(exc, RecallLabError) else f"{type(exc).__name__}: {exc}"
        if across and result.participants.get(plan.subject, {}).get("status") == "ok":
            result.participants[plan.subject]["within_failed"] = reason
        else:
            result.participants[plan.subject] = {"status": "failed", "reason": reason}
        log.warning("sub-%s: %s", plan.subject, reason)
        step.update(1)

    def settle(plan: ParticipantPlan, get: Callable[[], Any]) -> None:
        """Record the participant's outcome, or its failure; a cancel goes on up."""
        try:
            outcome = get()
        except Cancelled:
            raise
        except Exception as exc:
            failed(plan, exc)
            return
        record(plan, outcome)

    started = time.time()
    serial = runs_here(jobs, scheduler, scheduler_file)
    pooled = None
    if across:
        from decoding.study_pooled import run_pooled

        def to_cluster():
            return connect(jobs, scheduler, scheduler_file, batch)

        entries, pooled, result.where = run_pooled(
            plans, cfg, connect=None if serial else to_cluster, prog=prog
        )
        for subject, entry in entries.items():
            if entry.get("sessions"):
                entry["sessions"] = [
                    str(Path(p).relative_to(study.root)) for p in entry["sessions"]
                ]
            result.participants[subject] = entry
    if within:
        step = prog.step(f"participants{suffix}", len(plans), "participant")
        if serial:
            for plan in plans:
                paths = [str(p) for p in plan.paths]
                settle(plan, lambda paths=paths: decode_participant(paths, within_dict))
        else:
            result.where = _run_on_dask(
                plans, within_dict, jobs, scheduler, scheduler_file, prog, settle, batch
            )
        step.close()
    result.skipped = skipped
    classes = class_set(cfg.labels.target)
    summary = {
        "study": study.name,
        "where": result.where,
        "seconds": round(time.time() - started, 2),
        "config": cfg_dict,
        # What the decoders told apart: every confusion matrix's rows and columns.
        "target": classes.target,
        "classes": list(classes.codes),
        "class_names": list(classes.names),
        "participants": result.participants,
        "skipped": skipped,
    }
    if pooled is not None:
        summary["across_participants"] = result.across = pooled
    with prog.committing(), run_folder(reports / "runs", prog) as folder:
        (folder.partial / "summary.json").write_text(json.dumps(summary, indent=2, default=_json))
    result.folder = folder.final
    return result


def _labels_wanted(cfg: DecodeConfig) -> str:
    """What ``cfg.labels`` decodes from, in words."""
    lc = cfg.labels
    if lc.source == "trial_labels":
        return f"trials labelled with a{'n' if lc.target == 'emotion' else ''} {lc.target}"
    if lc.source == "clip_ratings":
        return "rated listening clips"
    return "valence reports"


def _run_on_dask(plans, cfg_dict, jobs, scheduler, scheduler_file, prog, settle, batch=None) -> str:
    from distributed import as_completed

    client, cluster, where = connect(jobs, scheduler, scheduler_file, batch)
    futures = {}
    try:
        for plan in plans:
            fut = client.submit(
                decode_participant,
                [str(p) for p in plan.paths],
                cfg_dict,
                key=f"recall-lab-decode-sub-{plan.subject}-{os.getpid()}-{time.time_ns()}",
                retries=2,
            )
            futures[fut] = plan
        for fut in as_completed(futures):
            prog.check()
            settle(futures[fut], fut.result)
    except BaseException:
        client.cancel(list(futures))  # a cancel or an error: nothing left running
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return where


def _channels(outcome: Any) -> dict[str, Any]:
    """The channels the pooled sessions were decoded on, and per session those left out
    (pooling uses only the features every session has: never a silent mix)."""
    sessions = outcome.sessions
    common = [f for f in sessions[0].feature_names if all(f in s.feature_names for s in sessions)]
    used = list(dict.fromkeys(f.rsplit(":", 1)[0] for f in common))
    dropped = {}
    for s in sessions:
        mine = dict.fromkeys(f.rsplit(":", 1)[0] for f in s.feature_names)
        left_out = [ch for ch in mine if ch not in used]
        if left_out:
            dropped[s.session_id] = left_out
    return {"used": used, "left_out": dropped}


def _json(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:
        pass
    return str(value)
