"""``recall-lab decode`` end to end: sessions -> preprocessing -> windows -> decoders ->
honest evaluation -> results in the session files and a report folder."""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.progress import Progress
from decoding.config import DecodeConfig
from decoding.labels import LabelRules, continuous_to_labels, reported_trajectory

log = logging.getLogger(__name__)


@dataclass
class SessionWindows:
    """One session's preprocessed windows and labels."""

    path: Path
    session_id: str
    participant_id: str
    eeg_times: np.ndarray
    times: np.ndarray
    X: np.ndarray
    y: np.ndarray
    memory: np.ndarray
    feature_names: list[str]
    notes: list[str]
    window_length: float = 1.0  # seconds a row spans (one sample period for samples input)


@dataclass
class DecodeOutcome:
    """Everything a decode run produced."""

    sessions: list[SessionWindows]
    results: dict[str, Any]  # decoder name -> DecoderResult
    summary: dict[str, Any]
    consistency: dict[str, Any] = field(default_factory=dict)


def load_session_windows(path: str | Path, cfg: DecodeConfig) -> SessionWindows:
    """Read, preprocess and window one session; labels from its valence reports."""
    from data_schema.reader import UnclosedSessionWarning, read_session
    from decoding.features import band_power_windows, sample_rows
    from decoding.preprocess import preprocess

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnclosedSessionWarning)
        session = read_session(path)
    notes = [str(w.message) for w in caught if issubclass(w.category, UnclosedSessionWarning)]
    lc = cfg.labels
    rules = LabelRules(
        merge_gap=lc.merge_gap, press_duration=lc.press_duration, min_chunk=lc.min_chunk
    )
    # Check the reports before the (slow) preprocessing, so a bad file fails at once.
    reported_trajectory(session, session.eeg.timestamps[:1], kind=lc.kind, rules=rules)
    prepared = preprocess(session, cfg.preprocess)
    notes += prepared.notes
    if cfg.windows.input == "samples":
        win = sample_rows(prepared)
        row_length = 1.0 / float(prepared.raw.info["sfreq"])
    else:
        win = band_power_windows(prepared, cfg.windows, baseline=cfg.preprocess.baseline)
        row_length = cfg.windows.length
    rep = reported_trajectory(session, win.times, kind=lc.kind, rules=rules)
    y = rep.label if rep.kind == "discrete" else continuous_to_labels(rep.valence, lc.threshold)
    X, times, memory = win.X, win.times, win.memory
    if cfg.windows.use_recall_only:
        sel = win.phase_kind == "recall"
        if sel.sum() == 0:
            notes.append("no recall phases: the whole recording is used (windows.use_recall_only)")
        else:
            X, times, memory, y = X[sel], times[sel], memory[sel], y[sel]
    return SessionWindows(
        Path(path),
        session.session_id,
        session.participant_id,
        session.eeg.timestamps,
        times,
        X,
        np.asarray(y, np.int8),
        memory,
        win.feature_names,
        notes,
        row_length,
    )


def build_dataset(sessions: Sequence[SessionWindows], cfg: DecodeConfig):
    """Pool sessions into one :class:`~decoding.evaluation.Dataset` on their common features."""
    from decoding.evaluation import Dataset

    common = [f for f in sessions[0].feature_names if all(f in s.feature_names for s in sessions)]
    if not common:
        raise RecallLabError(
            "the sessions share no EEG channel (after dropping bad channels): they cannot be "
            "decoded together"
        )
    parts = []
    for s in sessions:
        pos = {f: i for i, f in enumerate(s.feature_names)}
        parts.append(s.X[:, [pos[f] for f in common]])
        if len(common) < len(s.feature_names):
            s.notes.append(f"{len(s.feature_names) - len(common)} features not shared: unused")
    return Dataset(
        X=np.concatenate(parts).astype(np.float32),
        y=np.concatenate([s.y for s in sessions]),
        times=np.concatenate([s.times for s in sessions]),
        session=np.concatenate([np.full(len(s.y), i) for i, s in enumerate(sessions)]),
        participant=np.concatenate([np.full(len(s.y), s.participant_id) for s in sessions]),
        memory=np.concatenate([s.memory for s in sessions]),
        session_ids=[s.session_id for s in sessions],
        window_length=sessions[0].window_length,
        feature_names=common,
    )


def _consistency(ds, cfg: DecodeConfig, first, tick) -> dict[str, Any]:
    """Consistency across CEBRA-Behavior runs fitted on all data with different seeds."""
    from cebra.integrations.sklearn.metrics import consistency_score

    from decoding.decoders import make_decoder

    embeddings = [first]
    for seed in range(1, cfg.cebra.consistency_runs):
        dec = make_decoder("cebra_behavior_knn", cfg, cfg.evaluation.seed + seed)
        embeddings.append(dec.fit_representation(ds.X, ds.y).transform(ds.X))
        tick()
    scores, pairs, ids = consistency_score(embeddings, between="runs")
    return {
        "scores": [float(s) for s in np.asarray(scores).ravel()],
        "pairs": np.asarray(pairs).tolist(),
        "ids": np.asarray(ids).tolist(),
        "mean": float(np.mean(scores)),
    }


def _set_threads(cfg: DecodeConfig) -> None:
    import os

    import torch

    n = cfg.cebra.cpu_threads
    if n is None:
        cores = os.cpu_count() or 1
        n = 1 if cores < 4 else min(8, cores // 2)
    torch.set_num_threads(max(1, int(n)))


def device_name(cfg: DecodeConfig) -> str:
    """Where CEBRA trains: ``cuda`` when asked for and present, else ``cpu``."""
    import torch

    want = cfg.cebra.device
    if want in ("cuda_if_available", "cuda") and torch.cuda.is_available():
        return "cuda"
    return "cpu" if want == "cuda_if_available" else want


def decode_sessions(
    paths: Sequence[str | Path],
    cfg: DecodeConfig,
    *,
    report_dir: str | Path | None = None,
    progress: bool | str | Progress = False,
    write: bool = True,
    report: bool = True,
) -> DecodeOutcome:
    """Decode ``paths`` together, evaluate honestly, write results and the report.

    Parameters
    ----------
    paths
        Session files; several sessions of one participant, or of several participants.
    cfg
        The configuration (``decoding.config.load_config``).
    report_dir
        Folder for plots and files; default ``<first session>.decoding``. A new ``run-NNN``
        folder is made inside; nothing is overwritten.
    progress
        ``True``: progress bars on stderr; a :class:`data_schema.progress.Progress` (or its
        mode) to report steps (reading, one per decoder with its fits, writing) and to cancel.
    write
        Store results under ``/derived/decoding/run-NNN`` in every session file.
    report
        Write the report folder (plots, metrics, models, embeddings).
    """
    from decoding.evaluation import evaluate_decoder

    t_start = time.perf_counter()
    _set_threads(cfg)
    if not paths:
        raise RecallLabError("give at least one session file")
    if len({Path(p).resolve() for p in paths}) != len(paths):
        raise RecallLabError("the same session file is listed twice")
    from data_schema.validator import refuse_invalid_session

    for p in paths:
        refuse_invalid_session(p, "decode")
    _check_preprocess(cfg)
    report_root = Path(report_dir) if report_dir else Path(f"{paths[0]}.decoding")
    # Every output location is checked before the (long) work, so a failing run never
    # leaves a result in a session file without its report, or the other way round.
    if report:
        check_report_location(report_root)
    if write:
        for p in paths:
            check_session_writable(p)
    prog = Progress.of(progress)
    consistency_step = "cebra_behavior_knn" in cfg.decoders and cfg.cebra.consistency_runs >= 2
    prog.plan(
        ["read and preprocess", *cfg.decoders]
        + (["consistency"] if consistency_step else [])
        + (["write results"] if write or report else [])
    )
    sessions = []
    with prog.step("read and preprocess", len(paths), "session") as step:
        for p in paths:
            log.info("preprocessing %s", p)
            sessions.append(load_session_windows(p, cfg))
            step.update(1)
    ds = build_dataset(sessions, cfg)
    results = {}
    for name in cfg.decoders:
        results[name] = evaluate_decoder(ds, name, cfg, prog.ticker)
    consistency: dict[str, Any] = {}
    beh = results.get("cebra_behavior_knn")
    if beh is not None and beh.leaky_embedding is not None and consistency_step:
        consistency = _consistency(
            ds, cfg, beh.leaky_embedding, prog.ticker("consistency", cfg.cebra.consistency_runs - 1)
        )
    primary = cfg.decoders[0]
    summary: dict[str, Any] = {
        "sessions": [str(s.path) for s in sessions],
        "session_ids": ds.session_ids,
        "participants": sorted(set(ds.participant.tolist())),
        "primary_decoder": primary,
        "n_windows": len(ds.y),
        "class_counts": {str(c): int((ds.y == c).sum()) for c in (-1, 0, 1)},
        "device": device_name(cfg),
        "decoders": {
            n: {
                "f1_weighted": finite_or_none(r.f1),
                "balanced_accuracy": finite_or_none(r.balanced_accuracy),
                # Without permutations there is no chance level and no p-value: None ("not
                # computed", null in JSON), never a p of 1.0 or a NaN chance.
                "chance_f1_weighted": finite_or_none(r.chance_f1) if r.null_f1 else None,
                "chance_balanced_accuracy": (
                    finite_or_none(r.chance_balanced_accuracy) if r.null_f1 else None
                ),
                "p_value": finite_or_none(r.p_value) if r.null_f1 else None,
                "n_permutations": len(r.null_f1),
                "leaky_f1_weighted": r.leaky_f1,
                "split": r.split,
            }
            for n, r in results.items()
        },
        "consistency_mean": consistency.get("mean"),
        "notes": {str(s.path): s.notes for s in sessions},
    }
    outcome = DecodeOutcome(sessions, results, summary, consistency)
    if not (write or report):
        return outcome
    # From here on a cancel waits until the session files and the report are complete; the
    # report folder appears whole (run-NNN) or not at all.
    with prog.committing(), prog.step("write results", int(write) + int(report), "part") as st:
        if write:
            from decoding.results import write_results

            summary["runs"] = write_results(outcome, cfg)
            st.update(1)
        summary["seconds"] = round(time.perf_counter() - t_start, 2)
        if report:
            from decoding.report import write_report

            summary["report"] = str(write_report(outcome, cfg, report_root, prog))
            st.update(1)
    return outcome


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or None for a missing, NaN or infinite value."""
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def json_safe(obj: Any) -> Any:
    """``obj`` with numpy values made plain and NaN/infinity made None (JSON null)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return finite_or_none(obj)
    return obj


def strict_json(obj: Any) -> str:
    """JSON any strict parser reads: no bare NaN or Infinity (they become null)."""
    return json.dumps(json_safe(obj), indent=2, allow_nan=False, default=str)


def summary_json(outcome: DecodeOutcome) -> str:
    """The ``--json`` summary (strict JSON: a value not computed is null)."""
    return strict_json(outcome.summary)


def check_report_location(root: Path) -> None:
    """Raise a one-line error unless the report folder ``root`` can be made and written."""
    from data_schema.writer import check_writable_folder

    if root.exists() and not root.is_dir():
        raise RecallLabError(f"cannot use report folder {root}: it is a file, not a folder")
    try:
        check_writable_folder(root)
    except RecallLabError as exc:
        raise RecallLabError(f"cannot use report folder {root}: {exc}") from None


def check_session_writable(path: str | Path) -> None:
    """Raise a one-line error unless results can be added to the session file ``path``."""
    p = Path(path)
    try:
        with open(p, "r+b"):
            pass
    except OSError as exc:
        raise RecallLabError(
            f"cannot add results to {p} ({exc.strerror or exc}); copy it somewhere writable "
            "or pass --no-write"
        ) from None


def _check_preprocess(cfg: DecodeConfig) -> None:
    p = cfg.preprocess
    for name in ("l_freq", "h_freq", "resample"):
        v = getattr(p, name)
        if v is not None and not (np.isfinite(v) and v > 0):
            raise RecallLabError(f"preprocess.{name}: {v!r} is not a positive number of Hz")
    if p.l_freq is not None and p.h_freq is not None and not p.l_freq < p.h_freq:
        raise RecallLabError(
            f"preprocess: l_freq {p.l_freq:g} Hz must be below h_freq {p.h_freq:g} Hz (a band-pass "
            "keeps what lies between them)"
        )
