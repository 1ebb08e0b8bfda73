"""The affect trajectory of one memory: reported (valence keys) or decoded (EEG).

The reported trajectory comes from ``decoding.labels`` (the one place the RYM label rules live);
the decoded one from the newest ``/derived/decoding/run-NNN/trajectory``. Both are cut to the
memory's recall phase (protocol ``phase_start``/``phase_end`` markers of kind ``recall``), or to
the whole recording when the session has no protocol markers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from data_schema.errors import RecallLabError, SessionFileError
from data_schema.reader import Session

GRID_RATE = 10.0  # Hz; segments are seconds long, so 0.1 s resolution is plenty


class NoAffectError(RecallLabError):
    """The session holds no affect trajectory of the requested kind."""


@dataclass(frozen=True)
class AffectTrajectory:
    """Valence (-1..1) of one memory on a regular grid.

    Attributes
    ----------
    times : numpy.ndarray
        LSL seconds.
    valence : numpy.ndarray
        -1..1.
    kind : str
        ``reported`` or ``decoded``.
    source : str
        Where it came from (e.g. ``keyboard`` or ``/derived/decoding/run-002``).
    """

    times: np.ndarray
    valence: np.ndarray
    kind: str
    source: str


def _payload(value: str) -> dict:
    try:
        d = json.loads(value)
    except (TypeError, json.JSONDecodeError):
        return {}
    return d if isinstance(d, dict) else {}


def recall_window(session: Session, memory_id: str) -> tuple[float, float] | None:
    """LSL start and end of the memory's recall phase(s), or ``None`` without markers."""
    starts, ends = [], []
    for e in session.events_where(source="protocol"):
        p = _payload(e.value)
        if p.get("memory") != memory_id or p.get("kind") != "recall":
            continue
        if e.label == "phase_start":
            starts.append(e.timestamp)
        elif e.label == "phase_end":
            ends.append(e.timestamp)
    if not starts:
        return None
    start = min(starts)
    end = max(ends) if ends and max(ends) > start else None
    if end is None:
        raise SessionFileError(
            f"{session.path}: recall of memory {memory_id} has no phase_end; the session may "
            "have stopped early, choose another --memory"
        )
    return start, end


def _recording_span(session: Session) -> tuple[float, float]:
    if "eeg" in session.streams and session.streams["eeg"].n_samples > 1:
        ts = session.streams["eeg"].timestamps
        return float(ts[0]), float(ts[-1])
    if session.events:
        return session.events[0].timestamp, session.events[-1].timestamp
    raise NoAffectError(f"{session.path}: no EEG and no events; nothing to take affect from")


def reported_affect(session: Session, memory_id: str) -> AffectTrajectory:
    """Valence the participant reported with valence keys (or ratings) during the recall."""
    from decoding.labels import NoValenceReportsError, reported_trajectory

    window = recall_window(session, memory_id) or _recording_span(session)
    times = np.arange(window[0], window[1], 1.0 / GRID_RATE)
    if len(times) < 2:
        raise NoAffectError(f"{session.path}: recall of memory {memory_id} is too short")
    try:
        traj = reported_trajectory(session, times)
    except NoValenceReportsError as exc:
        raise NoAffectError(f"{exc}; or use --affect decoded after `recall-lab decode`") from exc
    valence = np.nan_to_num(np.asarray(traj.valence, dtype=np.float64), nan=0.0)
    return AffectTrajectory(times, valence, "reported", f"participant ({traj.kind})")


def decoded_affect(session: Session, memory_id: str) -> AffectTrajectory:
    """The newest decoded valence trajectory, cut to the memory's recall."""
    import h5py

    from data_schema.derived import latest_derived_run

    try:
        run = latest_derived_run(session.path, "decoding")
    except SessionFileError as exc:
        raise NoAffectError(
            f"{session.path} has no decoded affect; run `recall-lab decode {session.path}` "
            "first or use --affect reported"
        ) from exc
    with h5py.File(session.path, "r") as f:
        g = f[run]
        if "trajectory" not in g:
            raise NoAffectError(f"{session.path}:{run} has no trajectory; rerun recall-lab decode")
        t = g["trajectory/times"][()].astype(np.float64)
        v = g["trajectory/valence"][()].astype(np.float64)
    window = recall_window(session, memory_id) or (float(t[0]), float(t[-1]))
    times = np.arange(window[0], window[1], 1.0 / GRID_RATE)
    keep = np.isfinite(v)
    if keep.sum() < 2 or len(times) < 2:
        raise NoAffectError(f"{session.path}:{run}: decoded trajectory too short for a memory")
    # Hold the nearest decoded window (decoders output one value per window).
    idx = np.clip(np.searchsorted(t[keep], times), 0, keep.sum() - 1)
    return AffectTrajectory(times, v[keep][idx], "decoded", run)


def affect_trajectory(session: Session, memory_id: str, kind: str) -> AffectTrajectory:
    """``reported`` or ``decoded`` affect of one memory."""
    if kind == "reported":
        return reported_affect(session, memory_id)
    if kind == "decoded":
        return decoded_affect(session, memory_id)
    raise RecallLabError(f"--affect {kind!r}: use reported or decoded")
