"""A quick summary of a session file, without loading its samples.

Used by ``recall-lab info``. Only timestamps are read (in blocks), so hour-long recordings are
summarised in about a second.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from data_schema.errors import SessionFileError
from data_schema.reader import (
    _attr_str,
    _written_rows,
    attrs_dict,
    group_members,
    open_session_file,
)

BLOCK_ROWS = 1 << 20
MIN_GAP_S = 0.1  # shorter pauses are transport jitter (BrainFlow delivers in bursts)
GAP_PERIODS = 5  # ... and so are pauses of a few sample periods


def gap_threshold(nominal_rate: float) -> float:
    """Spacing (s) above which two timestamps of a stream are a gap, not jitter.

    ``max(MIN_GAP_S, GAP_PERIODS / nominal_rate)``; infinite for irregular streams (rate 0).
    """
    return max(MIN_GAP_S, GAP_PERIODS / nominal_rate) if nominal_rate > 0 else np.inf


def spacing_outside_gaps(diffs: np.ndarray, nominal_rate: float) -> tuple[int, float]:
    """Count and total (s) of the timestamp spacings that are neither gaps nor backwards.

    The measured rate of a stream is ``count / total``: the mean spacing with gaps left out,
    robust to devices that deliver in bursts (OpenBCI's per-packet timestamps), where a median
    would mislead. ``recall-lab info`` and ``recall-lab validate`` share this rule.
    """
    d = np.asarray(diffs, dtype=np.float64)
    d = d[(d >= 0) & (d <= gap_threshold(nominal_rate))]
    return int(d.size), float(d.sum())


def measured_rate(count: int, total_s: float) -> float:
    """Samples per second from :func:`spacing_outside_gaps`; 0 when nothing was measured."""
    return count / total_s if count > 0 and total_s > 0 else 0.0


@dataclass
class StreamSummary:
    name: str
    channels: int
    channel_types: dict[str, int]
    units: list[str]
    nominal_rate: float
    measured_rate: float
    samples: int
    duration_s: float
    gaps: int
    gap_seconds: float
    first_timestamp: float | None
    last_timestamp: float | None
    stream_type: str
    source: str


@dataclass
class VideoSummary:
    name: str
    codec: str
    width: int
    height: int
    nominal_rate: float
    measured_rate: float
    frames: int
    duration_s: float
    gaps: int
    first_timestamp: float | None
    last_timestamp: float | None
    source: str


@dataclass
class MemorySummary:
    memory_id: str
    description_chars: int | None
    sketch_points: int
    sketch_image: bool
    melody_seconds: float
    attrs: dict[str, Any]


@dataclass
class SessionSummary:
    path: str
    file_bytes: int
    session_id: str
    participant_id: str
    protocol: str
    schema_version: str
    software_version: str
    started_at: str
    ended_at: str
    clean_close: bool
    stop_reason: str
    streams: list[StreamSummary]
    events: int
    events_by_kind: dict[str, int]
    memories: list[MemorySummary]
    derived: dict[str, list[str]] = field(default_factory=dict)
    videos: list[VideoSummary] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize_session(path: str | Path) -> SessionSummary:
    """Summarise ``path``; raises ``SessionFileError`` (one line) if it cannot be read."""
    p = Path(path)
    try:
        return _summarize(p)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise SessionFileError(
            f"{p} does not follow the session spec ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); run "
            f"'recall-lab validate {p}' to list the problems"
        ) from None


def _summarize(p: Path) -> SessionSummary:
    with open_session_file(p) as f:
        a = attrs_dict(f)
        streams = [_stream(name, g) for name, g in group_members(f.get("streams", {}))]
        by_kind: Counter[str] = Counter()
        n_events = 0
        if "events" in f and f["events"].shape[0]:
            ev = f["events"].fields(["source", "label"])[()]
            n_events = len(ev)
            for src, label in zip(ev["source"], ev["label"]):
                by_kind[f"{_attr_str(src)}/{_attr_str(label)}"] += 1
        memories = [_memory(name, g) for name, g in group_members(f.get("memories", {}))]
        videos = [_video(name, g) for name, g in group_members(f.get("videos", {}))]
        derived = {
            stage: sorted(list(g.keys()))
            for stage, g in group_members(f.get("derived", {}))
            if isinstance(g, h5py.Group)
        }
    return SessionSummary(
        path=str(p),
        file_bytes=p.stat().st_size,
        session_id=str(a.get("session_id", "")),
        participant_id=str(a.get("participant_id", "")),
        protocol=str(a.get("protocol", "")),
        schema_version=str(a.get("schema_version", "")),
        software_version=str(a.get("software_version", "")),
        started_at=str(a.get("started_at", "")),
        ended_at=str(a.get("ended_at", "")),
        clean_close=bool(a.get("clean_close", False)),
        stop_reason=str(a.get("stop_reason", "")),
        streams=streams,
        events=n_events,
        events_by_kind=dict(sorted(by_kind.items())),
        memories=memories,
        derived=derived,
        videos=videos,
    )


def _stream(name: str, g: h5py.Group) -> StreamSummary:
    def js(key: str, default: Any) -> Any:
        try:
            return json.loads(_attr_str(g.attrs.get(key, json.dumps(default))))
        except ValueError:
            return default

    ts_ds = g["timestamps"]
    n_rows = min(ts_ds.shape[0], g["data"].shape[0])
    nominal = float(g.attrs.get("nominal_rate", 0.0))
    gap_min = gap_threshold(nominal)
    first = last = None
    n = gaps = 0
    gap_s = 0.0
    spaced, spacing_s = 0, 0.0  # spacings outside gaps, for the measured rate
    prev = None
    for start in range(0, n_rows, BLOCK_ROWS):
        block = ts_ds[start : min(start + BLOCK_ROWS, n_rows)]
        block = block[: _written_rows(block)] if start + len(block) >= n_rows else block
        block = block[np.isfinite(block)]
        if not block.size:
            continue
        if first is None:
            first = float(block[0])
        d = np.diff(block if prev is None else np.concatenate([[prev], block]))
        big = d[d > gap_min]
        gaps += int(big.size)
        gap_s += float(big.sum())
        k, t = spacing_outside_gaps(d, nominal)
        spaced += k
        spacing_s += t
        n += int(block.size)
        prev = last = float(block[-1])
    duration = (last - first) if first is not None and last is not None else 0.0
    types = js("channel_types", [])
    return StreamSummary(
        name=name,
        channels=int(g["data"].shape[1]) if g["data"].ndim == 2 else 0,
        channel_types=dict(Counter(types)),
        units=sorted(set(js("units", []))),
        nominal_rate=nominal,
        measured_rate=measured_rate(spaced, spacing_s),
        samples=n,
        duration_s=duration,
        gaps=gaps,
        gap_seconds=gap_s,
        first_timestamp=first,
        last_timestamp=last,
        stream_type=str(_attr_str(g.attrs.get("stream_type", ""))),
        source=str(_attr_str(g.attrs.get("source", ""))),
    )


def _video(name: str, g: h5py.Group) -> VideoSummary:
    n = min(g["timestamps"].shape[0], g["frames"].shape[0])
    ts = g["timestamps"][:n]  # 8 bytes a frame: an hour at 30 fps is under 1 MB
    ts = ts[: _written_rows(ts)]
    ts = ts[np.isfinite(ts)]
    nominal = float(g.attrs.get("nominal_rate", 0.0))
    d = np.diff(ts)
    k, total = spacing_outside_gaps(d, nominal)
    return VideoSummary(
        name=name,
        codec=str(_attr_str(g.attrs.get("codec", ""))),
        width=int(g.attrs.get("width", 0)),
        height=int(g.attrs.get("height", 0)),
        nominal_rate=nominal,
        measured_rate=measured_rate(k, total),
        frames=int(ts.size),
        duration_s=float(ts[-1] - ts[0]) if ts.size > 1 else 0.0,
        gaps=int((d > gap_threshold(nominal)).sum()) if nominal > 0 else 0,
        first_timestamp=float(ts[0]) if ts.size else None,
        last_timestamp=float(ts[-1]) if ts.size else None,
        source=str(_attr_str(g.attrs.get("source", ""))),
    )


def _memory(name: str, g: h5py.Group) -> MemorySummary:
    desc = None
    if "description" in g:
        desc = len(str(_attr_str(g["description"][()])))
    sk = g.get("sketch")
    points = int(sk["strokes"].shape[0]) if sk is not None and "strokes" in sk else 0
    image = bool(sk is not None and "image_png" in sk)
    seconds = 0.0
    mel = g.get("melody")
    if mel is not None and "audio" in mel:
        rate = float(mel.attrs.get("sample_rate", 0) or 0)
        seconds = mel["audio"].shape[0] / rate if rate > 0 else 0.0
    attrs = attrs_dict(g)
    return MemorySummary(name, desc, points, image, seconds, attrs)
