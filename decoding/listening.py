"""Listening blocks in a session: which clip played when, how it was rated, and its music.

A ``listening`` phase of the protocol (``docs/listening.md``) leaves, per clip, a phase
marked ``{"kind": "listening", "clip": id}``, a ``stimulus/clip_start`` event when the sound
reached the loudspeaker (with the file's SHA-256), and a rating phase ``{"kind": "sam",
"clip": id}`` holding the participant's ``sam_valence`` / ``sam_arousal`` ratings. This
module turns them into window labels (``labels.source: clip_ratings``) and finds the music
each EEG window heard (the tagger embedding of that moment of the clip).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.reader import Session


@dataclass
class ClipPlay:
    """One clip as a session heard it."""

    clip: str
    block: str
    start: float  # LSL time the sound began (clip_start; else the phase start)
    end: float
    sha256: str | None = None
    valence: float | None = None  # the participant's last rating of it
    arousal: float | None = None
    error: str = ""  # why it was not played (clip_error)


def _json(value: str) -> dict:
    try:
        v = json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return {}
    return v if isinstance(v, dict) else {}


def clip_plays(session: Session) -> list[ClipPlay]:
    """The clips the session's listening blocks played, in time order, with their ratings."""
    end = float(session.eeg.timestamps[-1]) if session.eeg.n_samples else 0.0
    return clip_plays_from_events(session.events, end)


def clip_plays_from_events(events: list, end_of_eeg: float) -> list[ClipPlay]:
    """:func:`clip_plays` from a list of events (a phase still open ends at ``end_of_eeg``)."""
    plays: dict[str, ClipPlay] = {}
    rating_phases: list[tuple[float, float, str]] = []
    open_: dict[str, tuple[float, dict]] = {}

    def where(source: str) -> list:
        return [e for e in events if e.source == source]

    for e in where("protocol"):
        if e.label not in ("phase_start", "phase_end"):
            continue
        v = _json(e.value)
        pid = str(v.get("phase", ""))
        if e.label == "phase_start":
            open_[pid] = (e.timestamp, v)
            continue
        if pid not in open_:
            continue
        t0, v0 = open_.pop(pid)
        _phase(plays, rating_phases, t0, e.timestamp, v0)
    for t0, v0 in open_.values():
        _phase(plays, rating_phases, t0, end_of_eeg, v0)
    for e in where("stimulus"):
        v = _json(e.value)
        play = plays.get(str(v.get("clip", "")))
        if play is None:
            continue
        if e.label == "clip_start":
            play.start = float(e.timestamp)
            play.sha256 = v.get("sha256") or None
        elif e.label == "clip_error":
            play.error = str(v.get("error", "not played"))
    for e in where("participant"):
        if e.label not in ("sam_valence", "sam_arousal"):
            continue
        clip = next((c for lo, hi, c in rating_phases if lo <= e.timestamp <= hi), None)
        if clip is None or clip not in plays:
            continue
        try:
            value = float(e.value)
        except ValueError:
            continue
        if not 1.0 <= value <= 9.0:
            continue
        setattr(plays[clip], e.label.removeprefix("sam_"), value)
    return sorted(plays.values(), key=lambda p: p.start)


def _phase(plays: dict, ratings: list, start: float, end: float, marker: dict) -> None:
    clip = str(marker.get("clip") or "")
    if not clip:
        return
    if marker.get("kind") == "listening":
        plays[clip] = ClipPlay(clip, str(marker.get("block") or ""), start, end)
    elif marker.get("kind") == "sam":
        ratings.append((start, end, clip))


def rating_class(valence: float | None) -> int | None:
    """SAM valence 1-9 as a class code: above 5 positive (1), below 5 negative (-1), 5 neutral
    (0); ``None`` when not rated."""
    if valence is None:
        return None
    return 1 if valence > 5 else -1 if valence < 5 else 0


def label_windows(
    plays: list[ClipPlay],
    times: np.ndarray,
    starts: np.ndarray,
    length: float = 0.0,
    code: Callable[[ClipPlay], int | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per window (centre ``times``, start ``starts``, last sample ``length`` s after its
    start): whether it is
    inside a played and rated clip, its class, the clip id and the seconds from the clip's
    sound start to the window's start. Windows are kept only when they lie wholly inside the
    clip's sound (after it began, before its phase ended). A clip's class is ``code(play)``
    (default: :func:`rating_class` of its valence rating); ``None`` leaves it out."""
    keep = np.zeros(times.size, bool)
    y = np.zeros(times.size, np.int8)
    clip = np.full(times.size, "", dtype=object)
    offset = np.full(times.size, np.nan)
    for p in plays:
        code_of = code(p) if code is not None else rating_class(p.valence)
        if p.error or code_of is None:
            continue
        sel = (times >= p.start) & (times < p.end) & (starts >= p.start - 1e-6)
        sel &= starts + length <= p.end + 1e-6  # wholly inside: not across a gap
        keep |= sel
        y[sel] = code_of
        clip[sel] = p.clip
        offset[sel] = starts[sel] - p.start
    return keep, y, clip.astype(str), offset


def resolve_library(explicit: str | Path | None, session: Session):
    """The music library for ``session``: ``explicit`` (``--library`` / ``music.library``),
    else the session's ``music_library`` attribute (relative to the session file)."""
    from protocols.library import load_library

    if explicit:
        return load_library(explicit)
    own = session.attrs.get("music_library")
    if own:
        folder = Path(str(own))
        if not folder.is_absolute():
            folder = Path(session.path).parent / folder
        if folder.is_dir():
            return load_library(folder)
    raise RecallLabError(
        f"{Path(session.path).name} has listening blocks but no music library was given: pass "
        "--library DIR, or set music.library in --config (study decode), to the folder with "
        "clips.csv the protocol played"
    )


def check_clips(plays: list[ClipPlay], library) -> list[str]:
    """Notes on clips the session played that the library lacks or holds in another version
    (an error if none of them can be found)."""
    notes = []
    found = 0
    for p in plays:
        try:
            clip = library.get(p.clip)
        except Exception:
            notes.append(f"clip {p.clip} is not in the library {library.folder}: its music unused")
            continue
        if p.sha256 and clip.sha256 != p.sha256:
            raise RecallLabError(
                f"clip {p.clip} in {library.folder} is not the file the session played (its "
                "SHA-256 differs); use the library the protocol played"
            )
        found += 1
    if plays and not found:
        raise RecallLabError(
            f"none of the session's clips ({', '.join(p.clip for p in plays[:5])}...) is in "
            f"the library {library.folder}"
        )
    return notes


def music_rows(
    clips: np.ndarray,
    offsets: np.ndarray,
    library,
    tagger,
    *,
    length: float = 3.0,
    step: float = 1.0,
) -> np.ndarray:
    """The tagger embedding of the music each window heard ``[windows x dim]``: the segment
    of its clip that starts nearest the window's start; NaN rows where no clip played or the
    library lacks it."""
    out = np.full((len(clips), tagger.dim), np.nan, np.float32)
    cache: dict[str, np.ndarray | None] = {}
    for cid in sorted(set(clips.tolist()) - {""}):
        try:
            clip = library.get(cid)
        except Exception:
            cache[cid] = None
            continue
        cache[cid] = tagger.embed_file(clip.file, length=length, step=step, cache=True)
    for i, (cid, off) in enumerate(zip(clips, offsets)):
        seg = cache.get(cid)
        if seg is None or not np.isfinite(off):
            continue
        k = int(np.clip(round(off / step), 0, len(seg) - 1))
        out[i] = seg[k]
    return out
