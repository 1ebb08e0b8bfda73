"""Valence labels from what the participant reported: key presses and continuous ratings.

Discrete labels follow the RYM study: presses of one valence that follow each other by less
than ``merge_gap`` seconds (2 s by default) merge into one *chunk* labelled with that valence;
every moment outside a chunk is neutral. Continuous labels are the rated value (-1..1) held
from one rating to the next.

This module is pure numpy (no torch, cebra or mne), so the generation stage and the app can
use it to draw the *reported* valence trajectory of a session.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.types import Event

if TYPE_CHECKING:
    from data_schema.reader import Session

#: Class codes used everywhere in decoding (labels, trajectories, confusion matrices).
VALENCE_CODES: dict[str, int] = {"negative": -1, "neutral": 0, "positive": 1}
#: Class names in code order -1, 0, 1 (the columns of ``probabilities``).
CLASS_NAMES: tuple[str, ...] = ("negative", "neutral", "positive")
CLASS_CODES: tuple[int, ...] = (-1, 0, 1)

#: The five emotions of the EAV dataset (Lee et al. 2024) in the dataset's own class order;
#: an emotion's class code is its position here (neutral 0 ... calmness 4).
EMOTION_NAMES: tuple[str, ...] = ("neutral", "sadness", "anger", "happiness", "calmness")
#: Each emotion's valence side (happiness and calmness positive, sadness and anger negative).
EMOTION_VALENCE: dict[str, int] = {
    "neutral": 0,
    "sadness": -1,
    "anger": -1,
    "happiness": 1,
    "calmness": 1,
}


@dataclass(frozen=True)
class ClassSet:
    """The classes one decode run tells apart (``labels.target``).

    Attributes
    ----------
    target
        ``"valence"`` or ``"emotion"``.
    codes
        Integer class codes, in the order of the columns of every probability array and of
        the rows and columns of every confusion matrix.
    names
        One name per code, same order.
    valence
        Each class's valence (-1..1): decoded probabilities become a valence trajectory as
        the probability-weighted sum of these (for valence: P(positive) - P(negative)).
    """

    target: str
    codes: tuple[int, ...]
    names: tuple[str, ...]
    valence: tuple[float, ...]

    def __len__(self) -> int:
        return len(self.codes)

    def name_of(self, code: int) -> str:
        """The name of class ``code``."""
        return self.names[self.codes.index(int(code))]

    def expected_valence(self, proba: np.ndarray) -> np.ndarray:
        """Probabilities ``[n x len(codes)]`` -> the valence they imply ``[n]``."""
        out = np.zeros(proba.shape[0], proba.dtype)
        for j, v in enumerate(self.valence):
            if v:  # valence: exactly P(positive) - P(negative), as stored before targets
                out = out + v * proba[:, j]
        return out


VALENCE_CLASSES = ClassSet("valence", CLASS_CODES, CLASS_NAMES, (-1.0, 0.0, 1.0))
EMOTION_CLASSES = ClassSet(
    "emotion",
    tuple(range(len(EMOTION_NAMES))),
    EMOTION_NAMES,
    tuple(float(EMOTION_VALENCE[n]) for n in EMOTION_NAMES),
)
#: ``labels.target`` -> its classes.
TARGETS: dict[str, ClassSet] = {"valence": VALENCE_CLASSES, "emotion": EMOTION_CLASSES}


def class_set(target: str) -> ClassSet:
    """The classes of ``labels.target`` ``target``."""
    try:
        return TARGETS[target]
    except KeyError:
        raise RecallLabError(f"labels.target: {target!r}; use {' or '.join(TARGETS)}") from None


class NoValenceReportsError(RecallLabError):
    """A session holds no valence reports to build labels from."""


@dataclass(frozen=True)
class ValencePress:
    """One valence key press: pressed at ``start``, released at ``end`` (LSL seconds)."""

    start: float
    end: float
    valence: str
    key: str = ""


@dataclass(frozen=True)
class ValenceChunk:
    """Consecutive presses of one valence merged into one labelled interval (LSL seconds)."""

    start: float
    end: float
    valence: str
    n_presses: int = 1

    @property
    def code(self) -> int:
        return VALENCE_CODES[self.valence]


@dataclass(frozen=True)
class LabelRules:
    """How reports become labels.

    Parameters
    ----------
    merge_gap
        Presses of the same valence less than this many seconds apart (release to next
        press) merge into one chunk. RYM uses 2 s.
    press_duration
        Seconds a press lasts when its ``key_up`` is missing (a crash, a lost event).
    max_press
        Longest a single press may last, in seconds; a key held longer (stuck key, missed
        ``key_up``) is cut here.
    min_chunk
        Chunks shorter than this are widened symmetrically to it, so one brief tap still
        labels at least one analysis window.
    ignore_auto_repeat
        Skip ``key_down`` events the operating system generated while a key was held.
    """

    merge_gap: float = 2.0
    press_duration: float = 0.2
    max_press: float = 30.0
    min_chunk: float = 0.0
    ignore_auto_repeat: bool = True

    def __post_init__(self) -> None:
        for name in ("merge_gap", "press_duration", "max_press", "min_chunk"):
            if getattr(self, name) < 0:
                raise RecallLabError(f"label rule {name} must be >= 0 seconds")


@dataclass
class ValenceTrajectory:
    """Valence over time on the LSL clock.

    Attributes
    ----------
    times
        LSL seconds, increasing.
    valence
        -1..1 (discrete: the class code; continuous: the rating; NaN where unknown).
    label
        Class code -1 / 0 / 1 (negative, neutral, positive).
    kind
        ``"discrete"`` (from key presses) or ``"continuous"`` (from ratings).
    chunks
        The merged chunks the discrete labels came from (empty for continuous).
    """

    times: np.ndarray
    valence: np.ndarray
    label: np.ndarray
    kind: str
    chunks: list[ValenceChunk] = field(default_factory=list)


def _payload(event: Event) -> dict:
    try:
        value = json.loads(event.value)
    except (json.JSONDecodeError, TypeError):
        return {"key": event.value}
    return value if isinstance(value, dict) else {"key": event.value}


def valence_presses(events: Iterable[Event], rules: LabelRules | None = None) -> list[ValencePress]:
    """Pair ``keyboard`` ``key_down``/``key_up`` events carrying a valence into presses.

    Events without a ``valence`` in their JSON value (other keys) are ignored. A ``key_down``
    without a matching ``key_up`` lasts ``rules.press_duration``.
    """
    rules = rules or LabelRules()
    open_presses: dict[str, tuple[float, str]] = {}
    presses: list[ValencePress] = []
    for e in sorted(events, key=lambda e: e.timestamp):
        if e.source != "keyboard" or e.label not in ("key_down", "key_up"):
            continue
        p = _payload(e)
        valence = str(p.get("valence", "")).lower()
        if valence not in VALENCE_CODES:
            continue
        key = str(p.get("key", valence))
        if e.label == "key_down":
            if p.get("auto_repeat") and rules.ignore_auto_repeat:
                continue
            if key in open_presses:  # a second down without an up: close the first one
                t0, v0 = open_presses.pop(key)
                presses.append(ValencePress(t0, min(e.timestamp, t0 + rules.press_duration), v0))
            open_presses[key] = (e.timestamp, valence)
        elif key in open_presses:
            t0, v0 = open_presses.pop(key)
            presses.append(ValencePress(t0, min(e.timestamp, t0 + rules.max_press), v0, key))
    for key, (t0, v0) in open_presses.items():
        presses.append(ValencePress(t0, t0 + rules.press_duration, v0, key))
    presses.sort(key=lambda p: p.start)
    return presses


def valence_chunks(
    presses: Sequence[ValencePress], rules: LabelRules | None = None
) -> list[ValenceChunk]:
    """Merge presses of one valence less than ``rules.merge_gap`` apart into chunks.

    A press of a different valence always ends the current chunk. Neutral presses make
    neutral chunks (which label the same as "no press" but are kept for the record).
    """
    rules = rules or LabelRules()
    chunks: list[ValenceChunk] = []
    for p in sorted(presses, key=lambda p: p.start):
        last = chunks[-1] if chunks else None
        if last is not None and last.valence == p.valence and p.start - last.end < rules.merge_gap:
            chunks[-1] = ValenceChunk(
                last.start, max(last.end, p.end), last.valence, last.n_presses + 1
            )
        else:
            chunks.append(ValenceChunk(p.start, p.end, p.valence))
    if rules.min_chunk > 0:
        widened = []
        for c in chunks:
            pad = max(0.0, rules.min_chunk - (c.end - c.start)) / 2
            widened.append(ValenceChunk(c.start - pad, c.end + pad, c.valence, c.n_presses))
        chunks = widened
    return chunks


def discrete_labels(times: np.ndarray, chunks: Sequence[ValenceChunk]) -> np.ndarray:
    """Class code (-1/0/1) at each time: the chunk's valence inside a chunk, else neutral."""
    times = np.asarray(times, dtype=np.float64)
    out = np.zeros(times.shape, dtype=np.int8)
    for c in chunks:
        if c.code == 0:
            continue
        lo = np.searchsorted(times, c.start, side="left")
        hi = np.searchsorted(times, c.end, side="right")
        out[lo:hi] = c.code
    return out


def rating_samples(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """Continuous ratings as (LSL times, values -1..1), from the ``valence`` stream if present,
    else from ``participant``/``valence_rating`` events. Empty arrays if there are none."""
    if "valence" in session.streams and session.streams["valence"].n_samples:
        s = session.streams["valence"]
        return s.timestamps.astype(np.float64), s.data[:, 0].astype(np.float64)
    ts, vs = [], []
    for e in session.events_where(source="participant", label="valence_rating"):
        try:
            value = float(_payload(e).get("valence", e.value))
        except (TypeError, ValueError):
            continue
        ts.append(e.timestamp)
        vs.append(value)
    return np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64)


def continuous_valence(
    times: np.ndarray, rating_times: np.ndarray, ratings: np.ndarray
) -> np.ndarray:
    """The most recent rating at each time (zero-order hold); NaN before the first rating."""
    times = np.asarray(times, dtype=np.float64)
    out = np.full(times.shape, np.nan)
    if len(rating_times) == 0:
        return out
    order = np.argsort(rating_times, kind="stable")
    rt, rv = np.asarray(rating_times)[order], np.clip(np.asarray(ratings)[order], -1, 1)
    idx = np.searchsorted(rt, times, side="right") - 1
    ok = idx >= 0
    out[ok] = rv[idx[ok]]
    return out


def continuous_to_labels(valence: np.ndarray, threshold: float = 1 / 3) -> np.ndarray:
    """Class codes from continuous valence: above ``threshold`` positive, below minus it
    negative, otherwise (and where unknown) neutral."""
    v = np.nan_to_num(np.asarray(valence, dtype=np.float64), nan=0.0)
    return np.where(v > threshold, 1, np.where(v < -threshold, -1, 0)).astype(np.int8)


def reported_trajectory(
    session: Session,
    times: np.ndarray | None = None,
    *,
    rate: float | None = None,
    kind: Literal["auto", "discrete", "continuous"] = "auto",
    rules: LabelRules | None = None,
) -> ValenceTrajectory:
    """The valence the participant reported, on a time grid.

    Parameters
    ----------
    session
        A session from :func:`data_schema.reader.read_session`.
    times
        LSL seconds to evaluate at. Default: the EEG sample times (per sample), or a grid at
        ``rate`` Hz over the EEG recording if ``rate`` is given.
    rate
        Grid rate in Hz when ``times`` is not given (e.g. 10 for a light trajectory).
    kind
        ``discrete`` (key presses, RYM chunks), ``continuous`` (ratings) or ``auto``
        (key presses if any, else ratings).
    rules
        Label rules (merge gap...).

    Raises
    ------
    NoValenceReportsError
        If the session has no reports of the requested kind.
    """
    rules = rules or LabelRules()
    if times is None:
        eeg_ts = session.eeg.timestamps
        if rate:
            times = np.arange(eeg_ts[0], eeg_ts[-1], 1.0 / rate)
        else:
            times = eeg_ts
    times = np.asarray(times, dtype=np.float64)
    presses = valence_presses(session.events, rules)
    if kind == "auto":
        kind = "discrete" if presses else "continuous"
    if kind == "discrete":
        if not presses:
            raise NoValenceReportsError(
                f"{session.path}: no valence key presses (keyboard key_down events with a "
                "'valence'); record with valence keys or use continuous ratings"
            )
        chunks = valence_chunks(presses, rules)
        label = discrete_labels(times, chunks)
        return ValenceTrajectory(times, label.astype(np.float32), label, "discrete", chunks)
    if kind != "continuous":
        raise RecallLabError(f"label kind {kind!r}: use discrete, continuous or auto")
    rt, rv = rating_samples(session)
    if len(rt) == 0:
        raise NoValenceReportsError(
            f"{session.path}: no valence reports (no valence key presses, no 'valence' stream, "
            "no valence_rating events); decoding needs the participant's valence reports"
        )
    valence = continuous_valence(times, rt, rv)
    return ValenceTrajectory(
        times, valence.astype(np.float32), continuous_to_labels(valence), "continuous"
    )


@dataclass(frozen=True)
class LabelledTrial:
    """One trial of an imported dataset (a protocol phase whose marker carries its label):
    the phase id, its start and end (LSL seconds) and its class code of the target."""

    phase: str
    start: float
    end: float
    code: int


def labelled_trials(
    events: Iterable[Event], target: str = "valence"
) -> tuple[list[LabelledTrial], dict[str, int]]:
    """The trials whose ``phase_start``/``phase_end`` marker JSON carries a label of
    ``target`` (``labels.source: trial_labels``): the marker's ``valence`` (-1/0/1), or with
    ``target`` ``emotion`` its ``emotion`` (EAV's five, codes 0-4). Also returns, per emotion
    name that is not one of the five, how many trials carried it (they are left out). A phase
    that never ends is left out: its end is unknown."""
    classes = class_set(target)
    trials: list[LabelledTrial] = []
    opened: dict[str, tuple[float, int]] = {}
    unknown: dict[str, int] = {}
    for e in events:
        if e.source != "protocol" or e.label not in ("phase_start", "phase_end"):
            continue
        v = _payload(e)
        if target == "emotion":
            emotion = str(v.get("emotion") or "").lower()
            if emotion not in classes.names:
                if emotion and e.label == "phase_start":
                    unknown[emotion] = unknown.get(emotion, 0) + 1
                continue
            code = classes.codes[classes.names.index(emotion)]
        elif v.get("valence") in (-1, 0, 1):
            code = int(v["valence"])
        else:
            continue
        phase = str(v.get("phase"))
        if e.label == "phase_start":
            opened[phase] = (e.timestamp, code)
        elif phase in opened:
            t0, code0 = opened.pop(phase)
            trials.append(LabelledTrial(phase, t0, e.timestamp, code0))
    return trials, unknown
