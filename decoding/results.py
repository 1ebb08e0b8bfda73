"""Decoding results in the session file, under ``/derived/decoding/run-NNN`` (docs/decoding.md).

The names written here are a contract with other stages (generation reads the decoded
trajectory): keep them stable.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data_schema.errors import SessionFileError
from decoding.labels import CLASS_NAMES, VALENCE_CLASSES, ClassSet

if TYPE_CHECKING:
    import h5py

    from decoding.config import DecodeConfig
    from decoding.pipeline import DecodeOutcome

STAGE = "decoding"


@dataclass
class DecodedTrajectory:
    """A decoded valence trajectory read back from a session file (per window).

    ``label`` and ``reported`` are class codes of the run's ``labels.target`` (``classes``
    names them, one per column of ``probabilities``); ``valence`` is the valence the
    probabilities imply (with ``target`` emotion: each emotion's valence side, weighted)."""

    run: str
    times: np.ndarray
    valence: np.ndarray
    label: np.ndarray
    probabilities: np.ndarray
    reported: np.ndarray
    fold: np.ndarray
    decoder: str
    metrics: dict[str, Any]
    classes: list[str] = dataclasses.field(default_factory=lambda: list(CLASS_NAMES))
    target: str = "valence"


def _per_window(
    proba: np.ndarray, fold: np.ndarray, classes: ClassSet = VALENCE_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    ok = fold >= 0
    valence = np.full(len(fold), np.nan, np.float32)
    valence[ok] = classes.expected_valence(proba[ok])
    label = np.zeros(len(fold), np.int8)
    label[ok] = np.asarray(classes.codes, np.int8)[proba[ok].argmax(axis=1)]
    return valence, label


def _write_trajectory(
    g: h5py.Group, times, proba, fold, reported, classes: ClassSet = VALENCE_CLASSES
) -> None:
    valence, label = _per_window(proba, fold, classes)
    g.create_dataset("times", data=np.asarray(times, np.float64))
    g.create_dataset("valence", data=valence)
    g.create_dataset("label", data=label)
    d = g.create_dataset("probabilities", data=np.asarray(proba, np.float32))
    d.attrs["classes"] = json.dumps(list(classes.names))
    d.attrs["class_codes"] = json.dumps(list(classes.codes))
    d.attrs["target"] = classes.target
    g.create_dataset("reported", data=np.asarray(reported, np.int8))
    g.create_dataset("fold", data=np.asarray(fold, np.int16))


def per_sample(
    sample_times: np.ndarray, window_times: np.ndarray, values: np.ndarray, tested: np.ndarray
) -> np.ndarray:
    """Each sample takes the value of the tested window whose centre is nearest in time."""
    wt, wv = window_times[tested], values[tested]
    if wt.size == 0:
        return np.full(sample_times.shape, np.nan, np.float32)
    idx = np.clip(np.searchsorted(wt, sample_times), 1, max(1, wt.size - 1))
    if wt.size == 1:
        return np.full(sample_times.shape, wv[0])
    left_nearer = np.abs(sample_times - wt[idx - 1]) <= np.abs(wt[idx] - sample_times)
    return wv[np.where(left_nearer, idx - 1, idx)]


def write_results(outcome: DecodeOutcome, cfg: DecodeConfig) -> dict[str, str]:
    """Add a new run to every decoded session file; returns {path: run group}."""
    from data_schema.derived import new_derived_run

    runs = {}
    primary = cfg.decoders[0]
    offsets = np.cumsum([0] + [len(s.y) for s in outcome.sessions])
    for i, s in enumerate(outcome.sessions):
        sl = slice(offsets[i], offsets[i + 1])
        with new_derived_run(s.path, STAGE, cfg.to_dict()) as g:
            g.attrs["primary_decoder"] = primary
            g.attrs["decoders"] = json.dumps(list(outcome.results))
            g.attrs["metrics"] = json.dumps(
                {n: r.metrics() for n, r in outcome.results.items()}, default=float
            )
            g.attrs["sessions"] = json.dumps(outcome.summary["session_ids"])
            g.attrs["notes"] = json.dumps(s.notes)
            g.attrs["device"] = outcome.summary["device"]
            dg = g.create_group("decoders")
            for name, r in outcome.results.items():
                sub = dg.create_group(name)
                _write_trajectory(sub, s.times, r.proba[sl], r.fold[sl], s.y, r.classes)
                sub.attrs["metrics"] = json.dumps(r.metrics(), default=float)
                if name == primary:
                    traj = g.create_group("trajectory")
                    _write_trajectory(traj, s.times, r.proba[sl], r.fold[sl], s.y, r.classes)
                    valence, label = _per_window(r.proba[sl], r.fold[sl], r.classes)
                    tested = r.fold[sl] >= 0
                    ps = g.create_group("trajectory_samples")
                    ps.create_dataset("times", data=s.eeg_times.astype(np.float64))
                    ps.create_dataset(
                        "valence",
                        data=per_sample(s.eeg_times, s.times, valence, tested).astype(np.float32),
                    )
                    ps.create_dataset("label", data=per_sample(s.eeg_times, s.times, label, tested))
            emb = g.create_group("embedding")
            emb.create_dataset("times", data=s.times.astype(np.float64))
            for name, key in (("cebra_behavior_knn", "behavior"), ("cebra_time_knn", "time")):
                r = outcome.results.get(name)
                if r is not None and r.leaky_embedding is not None:
                    d = emb.create_dataset(key, data=r.leaky_embedding[sl].astype(np.float32))
                    d.attrs["fitted_on"] = "all windows of the run (display only; not honest)"
            runs[str(s.path)] = g.name
    return runs


def read_decoded_trajectory(
    path: str | Path, run: str | None = None, decoder: str | None = None
) -> DecodedTrajectory:
    """The decoded trajectory of ``run`` (default: the newest) for ``decoder`` (default: the
    run's primary decoder)."""
    from data_schema.derived import latest_derived_run
    from data_schema.reader import open_session_file

    name = run or latest_derived_run(path, STAGE)
    if not name.startswith("/"):
        name = f"/derived/{STAGE}/{name}"
    with open_session_file(path) as f:
        if name not in f:
            raise SessionFileError(f"{path} has no decoding run {name}")
        g = f[name]
        dec = decoder or str(g.attrs.get("primary_decoder", ""))
        if decoder is None:
            t = g["trajectory"]
        else:
            if "decoders" not in g or decoder not in g["decoders"]:
                raise SessionFileError(f"{path} {name} has no decoder {decoder!r}")
            t = g["decoders"][decoder]
        metrics = json.loads(g.attrs.get("metrics", "{}")).get(dec, {})
        p_attrs = t["probabilities"].attrs
        return DecodedTrajectory(
            name,
            t["times"][()],
            t["valence"][()],
            t["label"][()],
            t["probabilities"][()],
            t["reported"][()],
            t["fold"][()],
            dec,
            metrics,
            json.loads(p_attrs.get("classes", json.dumps(list(CLASS_NAMES)))),
            str(p_attrs.get("target", "valence")),
        )
