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
    clip: np.ndarray | None = None  # listening block's clip per row ("" elsewhere)
    clip_offset: np.ndarray | None = None  # seconds from the clip's sound start to the row


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
    from decoding.preprocess import preprocess

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnclosedSessionWarning)
        session = read_session(path)
    notes = [str(w.message) for w in caught if issubclass(w.category, UnclosedSessionWarning)]
    lc = cfg.labels
    rules = LabelRules(
        merge_gap=lc.merge_gap, press_duration=lc.press_duration, min_chunk=lc.min_chunk
    )
    if lc.source == "clip_ratings":
        return _listening_windows(path, session, cfg, notes)
    if lc.source == "trial_labels":
        return _trial_windows(path, session, cfg, notes)
    # Check the reports before the (slow) preprocessing, so a bad file fails at once.
    reported_trajectory(session, session.eeg.timestamps[:1], kind=lc.kind, rules=rules)
    prepared = preprocess(session, cfg.preprocess)
    notes += prepared.notes
    win, row_length = _windows(prepared, cfg)
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


def _windows(prepared, cfg: DecodeConfig):
    """The rows the decoders see (``windows.input``) and the seconds one row spans."""
    from decoding.features import band_power_windows, de_windows, raw_windows, sample_rows

    if cfg.windows.input == "raw":
        return raw_windows(prepared, cfg.windows), cfg.windows.length
    if cfg.windows.input == "samples":
        return sample_rows(prepared), 1.0 / float(prepared.raw.info["sfreq"])
    if cfg.windows.input == "de":
        return de_windows(prepared, cfg.windows, baseline=cfg.preprocess.baseline), (
            cfg.windows.length
        )
    return band_power_windows(prepared, cfg.windows, baseline=cfg.preprocess.baseline), (
        cfg.windows.length
    )


def _listening_windows(path, session, cfg: DecodeConfig, notes: list[str]) -> SessionWindows:
    """Windows of a session's listening blocks, labelled by the participant's clip ratings
    (``labels.source: clip_ratings``); the clip is each window's ``memory`` (so
    ``evaluation.split: memories`` holds out whole clips)."""
    from decoding.listening import clip_plays, label_windows
    from decoding.preprocess import preprocess

    plays = clip_plays(session)
    if not plays:
        raise RecallLabError(
            f"{Path(path).name} has no listening block (labels.source: clip_ratings needs clips "
            "played by a protocol's listening phase)"
        )
    rated = [p for p in plays if p.valence is not None and not p.error]
    if not rated:
        raise RecallLabError(
            f"{Path(path).name}: none of its {len(plays)} clips has a valence rating; clip "
            "ratings cannot label anything"
        )
    for p in plays:
        if p.error:
            notes.append(f"clip {p.clip} was not played ({p.error}): left out")
        elif p.valence is None:
            notes.append(f"clip {p.clip} has no valence rating: left out")
    prepared = preprocess(session, cfg.preprocess)
    notes += prepared.notes
    win, row_length = _windows(prepared, cfg)
    starts = win.starts if win.starts is not None else win.times
    # A window's last sample is one sample period before its end (phases end on a sample).
    last = row_length - 1.0 / float(prepared.raw.info["sfreq"])
    keep, y, clip, offset = label_windows(plays, win.times, starts, last)
    if not keep.any():
        raise RecallLabError(
            f"{Path(path).name}: no {cfg.windows.length:g} s window fits inside a rated clip; "
            "shorten windows.length"
        )
    return SessionWindows(
        Path(path),
        session.session_id,
        session.participant_id,
        session.eeg.timestamps,
        win.times[keep],
        win.X[keep],
        y[keep],
        clip[keep],
        win.feature_names,
        notes,
        row_length,
        clip[keep],
        offset[keep],
    )


def _trial_windows(path, session, cfg: DecodeConfig, notes: list[str]) -> SessionWindows:
    """Windows inside trials whose protocol marker carries a label (imported datasets such as
    EAV: ``labels.source: trial_labels``): the marker's ``valence`` (-1/0/1), or with
    ``labels.target: emotion`` its ``emotion`` (EAV's five, codes 0-4). The trial is each
    window's ``memory`` (``evaluation.split: memories`` holds out whole trials)."""
    from decoding.labels import class_set, labelled_trials
    from decoding.listening import ClipPlay, label_windows
    from decoding.preprocess import preprocess

    target = cfg.labels.target
    classes = class_set(target)
    labelled, unknown = labelled_trials(session.events, target)
    trials = [ClipPlay(t.phase, "", t.start, t.end) for t in labelled]
    codes = {t.phase: t.code for t in labelled}
    for emotion, n in unknown.items():
        notes.append(
            f"{n} trial(s) labelled {emotion!r}, not one of {', '.join(classes.names)}: left out"
        )
    if not trials:
        raise RecallLabError(
            f"{Path(path).name} has no labelled trials (labels.source: trial_labels needs "
            f"protocol phases whose marker carries a{'n' if target == 'emotion' else ''} "
            f"{target}, as imported EAV sessions have)"
        )
    prepared = preprocess(session, cfg.preprocess)
    notes += prepared.notes
    win, row_length = _windows(prepared, cfg)
    starts = win.starts if win.starts is not None else win.times
    last = row_length - 1.0 / float(prepared.raw.info["sfreq"])
    keep, y, trial, _ = label_windows(trials, win.times, starts, last, code=lambda t: codes[t.clip])
    if not keep.any():
        raise RecallLabError(
            f"{Path(path).name}: no {cfg.windows.length:g} s window fits inside a trial"
        )
    return SessionWindows(
        Path(path),
        session.session_id,
        session.participant_id,
        session.eeg.timestamps,
        win.times[keep],
        win.X[keep],
        y[keep],
        trial[keep],
        win.feature_names,
        notes,
        row_length,
    )


def build_dataset(sessions: Sequence[SessionWindows], cfg: DecodeConfig):
    """Pool sessions into one :class:`~decoding.evaluation.Dataset` on their common features."""
    from decoding.evaluation import Dataset
    from decoding.labels import class_set

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
        classes=class_set(cfg.labels.target),
        clip=np.concatenate([_clips(s) for s in sessions]),
        clip_offset=np.concatenate(
            [
                s.clip_offset if s.clip_offset is not None else np.full(len(s.y), np.nan)
                for s in sessions
            ]
        ),
    )


def _clips(s: SessionWindows) -> np.ndarray:
    return s.clip if s.clip is not None else np.full(len(s.y), "", dtype=object).astype(str)


def add_music(ds, sessions: Sequence[SessionWindows], cfg: DecodeConfig) -> list[str]:
    """Put the music each window heard into ``ds.side["music"]`` (tagger embeddings from the
    library the sessions played); returns notes for the record."""
    from data_schema.reader import read_session
    from decoding.listening import check_clips, clip_plays, music_rows, resolve_library
    from decoding.music_tagger import MusicTagger

    mc = cfg.music
    first = read_session(sessions[0].path)
    library = resolve_library(mc.library, first)
    notes: list[str] = []
    for s in sessions:
        session = first if s.path == sessions[0].path else read_session(s.path)
        notes += check_clips(clip_plays(session), library)
    tagger = MusicTagger.load(mc.models, device=mc.tagger_device)
    if tagger.tiny:
        notes.append("the audio tagger has TINY random weights: music embeddings are noise")
    ds.side["music"] = music_rows(
        ds.clip, ds.clip_offset, library, tagger, length=mc.segment_length, step=mc.segment_step
    )
    ds.library = library
    return notes


def add_side_inputs(ds, sessions: Sequence[SessionWindows], cfg: DecodeConfig) -> list[str]:
    """Give ``ds`` the per-window inputs besides the EEG that ``cfg.decoders`` learn from:
    the music each window heard (``music_supervised``), the participant's voice and face (the
    multimodal fusion and its audio and video baselines). Returns notes for the record."""
    from decoding.decoders import SIDE_INPUTS

    notes: list[str] = []
    if "music_supervised" in cfg.decoders:
        notes += add_music(ds, sessions, cfg)
    if {"audio", "video"} & {x for n in cfg.decoders for x in SIDE_INPUTS.get(n, ())}:
        from decoding.multimodal import add_voice_and_face

        notes += add_voice_and_face(ds, sessions, cfg)
    return notes


def require_decoder_models(cfg: DecodeConfig) -> None:
    """Raise a one-line error unless the models ``cfg.decoders`` need are installed (found
    before the long work, not after it)."""
    from generation.models import require_model

    if "music_supervised" in cfg.decoders:
        require_model("audio-tagger", cfg.music.models)
    if {"multimodal_fusion", "audio_only"} & set(cfg.decoders):
        require_model("audio-tagger", cfg.fusion.models)
    if {"multimodal_fusion", "video_only"} & set(cfg.decoders):
        require_model("face-vit", cfg.fusion.models)


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
    require_decoder_models(cfg)
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
    if cfg.labels.source == "clip_ratings" and np.unique(ds.y).size < 2:
        names = {-1: "negative", 0: "neutral", 1: "positive"}
        raise RecallLabError(
            f"the clip ratings give only one class ({names[int(ds.y[0])]}): decoding needs "
            "clips rated on both sides of 5 (pleasant and unpleasant)"
        )
    extra = add_side_inputs(ds, sessions, cfg)
    for s in sessions:
        s.notes += extra
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
        "class_counts": {str(c): int((ds.y == c).sum()) for c in ds.classes.codes},
        "target": ds.classes.target,
        "class_names": {str(c): n for c, n in zip(ds.classes.codes, ds.classes.names)},
        "device": device_name(cfg),
        "decoders": {
            n: {
                "f1_weighted": finite_or_none(r.f1),
                "balanced_accuracy": finite_or_none(r.balanced_accuracy),
                "accuracy": finite_or_none(r.accuracy),
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
