"""Affect trajectory -> segments of positive, neutral and negative affect.

Pure numpy: no torch, no clock. A trajectory is valence (-1..1) on a time grid; it is smoothed
with a centred moving average, classified with a threshold, and runs shorter than the minimum
duration are merged into the neighbour they resemble most, so the music and images do not
flicker between affects.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np

from data_schema.errors import RecallLabError

AFFECTS = ("negative", "neutral", "positive")


@dataclass(frozen=True)
class Segment:
    """One stretch of constant affect on the reconstruction's timeline.

    Attributes
    ----------
    index : int
        Position in the original (intended) order.
    start, end : float
        Seconds from the start of the memory's recall.
    affect : str
        ``positive``, ``neutral`` or ``negative``.
    strength : float
        0..1: mean absolute valence over the segment (how strongly the affect was felt).
    valence : float
        Mean signed valence (-1..1) over the segment.
    """

    index: int
    start: float
    end: float
    affect: str
    strength: float
    valence: float

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict:
        d = asdict(self)
        d["duration"] = self.duration
        return d


@dataclass(frozen=True)
class SegmentRules:
    """How a trajectory becomes segments.

    Attributes
    ----------
    min_duration : float
        Seconds; shorter runs merge into a neighbour.
    smoothing : float
        Seconds of the centred moving average applied before classifying (0: none).
    threshold : float
        Smoothed valence above ``threshold`` is positive, below ``-threshold`` negative.
    """

    min_duration: float = 4.0
    smoothing: float = 1.0
    threshold: float = 1 / 3

    def __post_init__(self) -> None:
        if self.min_duration < 0 or self.smoothing < 0 or not 0 < self.threshold < 1:
            raise RecallLabError(
                "segment rules: min_duration and smoothing must be >= 0 and threshold in (0, 1)"
            )


def _smooth(t: np.ndarray, v: np.ndarray, seconds: float) -> np.ndarray:
    if seconds <= 0 or len(v) < 3:
        return v
    dt = float(np.median(np.diff(t)))
    n = max(1, round(seconds / dt))
    if n <= 1:
        return v
    kernel = np.ones(n) / n
    pad = n // 2
    padded = np.pad(v, (pad, n - 1 - pad), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def segment_trajectory(
    times: np.ndarray, valence: np.ndarray, rules: SegmentRules | None = None
) -> list[Segment]:
    """Cut a valence trajectory into affect segments.

    Parameters
    ----------
    times
        Seconds, increasing (any origin; segments start at 0 = ``times[0]``).
    valence
        -1..1 per time (NaN = unknown, treated as neutral).
    rules
        Minimum duration, smoothing and threshold.

    Returns
    -------
    list of Segment
        Contiguous, covering ``times[0]`` to ``times[-1]`` plus one grid step.
    """
    rules = rules or SegmentRules()
    t = np.asarray(times, dtype=np.float64)
    v = np.nan_to_num(np.asarray(valence, dtype=np.float64), nan=0.0)
    if t.ndim != 1 or t.shape != v.shape or len(t) < 2:
        raise RecallLabError("affect trajectory: need at least two (time, valence) samples")
    if np.any(np.diff(t) <= 0):
        raise RecallLabError("affect trajectory: times must increase")
    step = float(np.median(np.diff(t)))
    edges = np.append(t - t[0], t[-1] - t[0] + step)
    sm = np.clip(_smooth(t, v, rules.smoothing), -1, 1)
    code = np.where(sm > rules.threshold, 1, np.where(sm < -rules.threshold, -1, 0))
    # Runs of equal code: [start_idx, end_idx)
    change = np.flatnonzero(np.diff(code)) + 1
    bounds = np.concatenate([[0], change, [len(code)]])
    runs = [[int(a), int(b), int(code[a])] for a, b in itertools.pairwise(bounds)]
    # Merge the shortest too-short run into the neighbour with the closer mean valence,
    # repeatedly, so the result does not depend on scan direction.
    while len(runs) > 1:
        durs = [edges[b] - edges[a] for a, b, _ in runs]
        i = int(np.argmin(durs))
        if durs[i] >= rules.min_duration:
            break
        mean_i = sm[runs[i][0] : runs[i][1]].mean()
        cands = [j for j in (i - 1, i + 1) if 0 <= j < len(runs)]
        j = min(cands, key=lambda k: abs(sm[runs[k][0] : runs[k][1]].mean() - mean_i))
        a, b = min(runs[i][0], runs[j][0]), max(runs[i][1], runs[j][1])
        runs[min(i, j)] = [a, b, runs[j][2]]
        del runs[max(i, j)]
        # Neighbours that now share a code become one run.
        merged: list[list[int]] = []
        for r in runs:
            if merged and merged[-1][2] == r[2]:
                merged[-1][1] = r[1]
            else:
                merged.append(r)
        runs = merged
    segments = []
    for k, (a, b, c) in enumerate(runs):
        seg_v = sm[a:b]
        affect = AFFECTS[c + 1]
        strength = float(np.mean(np.abs(seg_v))) if c != 0 else 0.0
        segments.append(
            Segment(k, float(edges[a]), float(edges[b]), affect, strength, float(seg_v.mean()))
        )
    return segments


def rescale(segments: list[Segment], total: float) -> list[Segment]:
    """Stretch the timeline so the segments last ``total`` seconds in all."""
    if total <= 0:
        raise RecallLabError("--duration must be a positive number of seconds")
    f = total / segments[-1].end
    return [
        Segment(s.index, s.start * f, s.end * f, s.affect, s.strength, s.valence) for s in segments
    ]


def reorder(segments: list[Segment], order: list[int]) -> list[Segment]:
    """The same segments (durations kept) laid out in ``order`` on a new timeline."""
    out, t = [], 0.0
    for i in order:
        s = segments[i]
        out.append(Segment(s.index, t, t + s.duration, s.affect, s.strength, s.valence))
        t += s.duration
    return out


def control_order(segments: list[Segment], seed: int) -> list[int]:
    """A seeded random permutation of the segments for the reordered control condition.

    When the affect sequence can change at all, the permutation is drawn again (seeded) until
    the affect order differs from the intended one, so the control really is a different
    trajectory; with one segment (or all affects equal) it is the identity.
    """
    n = len(segments)
    intended = [s.affect for s in segments]
    rng = np.random.default_rng(seed)
    order = list(range(n))
    if n < 2 or len(set(intended)) < 2:
        return order
    for _ in range(1000):
        order = [int(i) for i in rng.permutation(n)]
        if [intended[i] for i in order] != intended:
            return order
    return order
