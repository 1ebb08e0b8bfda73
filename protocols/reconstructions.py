"""The reconstructions a ``preference`` phase shows: read from the session whose ``generate``
run made them (``/derived/generation/run-NNN``, written by ``recall-lab generate --control``).

Each memory has two videos of the same length made from the same segments: the
reconstruction (segments in the order the participant reported them) and the control (the
same segments reordered). The participant judges them blind (``protocols.engine``); the
analysis (``generation.preference``) needs the intended valence of every segment on each
video's own timeline, read here too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_schema.errors import RecallLabError
from protocols.library import file_sha256

#: The two videos of a memory, by what they show (never shown to the participant).
SHOWS = ("reconstruction", "control")


@dataclass(frozen=True)
class ShownVideo:
    """One video of the pair: its MP4, the WAV of its sound, and its segments' valence."""

    shows: str  # "reconstruction" or "control"
    video: Path
    audio: Path | None
    seconds: float
    #: ``(start, end, valence)`` of each segment on this video's own timeline (seconds).
    segments: tuple[tuple[float, float, float], ...]
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def sha256(self) -> str:
        """SHA-256 of the MP4 (read once; the players read it on their worker before the video
        starts, so the engine's ``video_start`` never hashes on the GUI thread)."""
        if "sha256" not in self._cache:
            self._cache["sha256"] = file_sha256(self.video)
        return self._cache["sha256"]


@dataclass(frozen=True)
class Reconstruction:
    """A memory's reconstruction and its reordered control, from one generation run."""

    memory_id: str
    source: Path  # the session file whose generate run made them
    run: str  # run-NNN
    videos: dict[str, ShownVideo]

    @property
    def seconds(self) -> float:
        return max(v.seconds for v in self.videos.values())


def _segments(raw: list[dict[str, Any]]) -> tuple[tuple[float, float, float], ...]:
    """Segments laid end to end in the given order (a control's are reordered)."""
    out, t = [], 0.0
    for s in raw:
        d = float(s["end"]) - float(s["start"])
        out.append((t, t + d, float(s["valence"])))
        t += d
    return tuple(out)


def preference_attrs(reconstructions: dict[str, Reconstruction] | None) -> dict[str, str]:
    """Root attributes of a judging session: which session and run made the videos shown
    (``preference_source``, ``preference_run``), for the analysis."""
    if not reconstructions:
        return {}
    rec = next(iter(reconstructions.values()))
    return {"preference_source": str(rec.source.resolve()), "preference_run": rec.run}


def preference_run(protocol: Any) -> str | None:
    """The generation run the protocol's preference phases show (``latest`` unless one names
    ``run-NNN``; one run per session); ``None`` when it has no preference phase."""
    from protocols.model import PreferencePhase

    for q in protocol.simple_phases():
        if isinstance(q, PreferencePhase):
            return q.run
    return None


def load_reconstructions(session: str | Path, run: str = "latest") -> dict[str, Reconstruction]:
    """The reconstructions (with controls) of every memory in ``session``'s generation run
    ``run`` (``latest`` or ``run-NNN``).

    Raises :class:`RecallLabError` in one line when the file has no such run, the run was made
    without ``--control``, or a video it names is missing.
    """
    import h5py

    from data_schema.derived import list_derived_runs
    from data_schema.reader import open_session_file

    path = Path(session)
    runs = list_derived_runs(path, "generation")
    if not runs:
        raise RecallLabError(
            f"{path.name} has no reconstructions: run `recall-lab generate {path.name} --control` "
            "first (the preference study shows each reconstruction beside its reordered control)"
        )
    name = runs[-1] if run == "latest" else run
    if name not in runs:
        raise RecallLabError(f"{path.name} has no generation {run}; it has {', '.join(runs)}")
    out: dict[str, Reconstruction] = {}
    with open_session_file(path) as f:
        g = f["derived"]["generation"][name]
        for memory_id in sorted(k for k in g if isinstance(g[k], h5py.Group)):
            m = g[memory_id]
            manifest = json.loads(m.attrs["manifest"])
            control = manifest.get("control")
            if control is None or "control_video" not in m.attrs:
                raise RecallLabError(
                    f"{path.name} {name} was generated without --control: the preference study "
                    f"needs the reordered control; run `recall-lab generate {path.name} --control`"
                )
            files = {
                "reconstruction": Path(m.attrs["video"]),
                "control": Path(m.attrs["control_video"]),
            }
            raws = {"reconstruction": manifest["segments"], "control": control["segments"]}
            videos = {}
            for shows, video in files.items():
                if not video.is_file():
                    raise RecallLabError(
                        f"{path.name} {name}: the {shows} video of memory {memory_id!r} is missing "
                        f"({video}); move the generation folder back or generate again"
                    )
                wav = video.with_suffix(".wav")
                segs = _segments(raws[shows])
                videos[shows] = ShownVideo(
                    shows,
                    video,
                    wav if wav.is_file() else None,
                    segs[-1][1] if segs else float(manifest.get("total_seconds", 0.0)),
                    segs,
                )
            out[memory_id] = Reconstruction(memory_id, path, name, videos)
    if not out:
        raise RecallLabError(f"{path.name} {name} holds no memory's reconstruction")
    return out
