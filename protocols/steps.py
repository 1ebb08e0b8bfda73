"""A protocol unrolled into the steps it runs: ``repeat`` phases per memory, ``listening``
blocks per clip, ``preference`` phases per video (counterbalanced), as
:class:`~protocols.engine.ProtocolEngine` runs them one after another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError
from protocols.library import Clip
from protocols.model import (
    ListeningPhase,
    MemoryCue,
    PreferenceChoice,
    PreferencePhase,
    PreferenceRating,
    PreferenceVideo,
    Protocol,
    RepeatPhase,
    SamPhase,
    SimplePhase,
)
from protocols.reconstructions import Reconstruction, ShownVideo


@dataclass(frozen=True)
class Step:
    """One phase as it runs: a protocol phase, for one memory if inside a ``repeat``.

    Attributes
    ----------
    index
        Position in the expanded run (0-based).
    phase
        The phase from the protocol.
    memory
        The memory it concerns, or ``None``.
    memory_index
        Position of that memory in the protocol's ``memories`` list.
    repeat
        Id of the enclosing ``repeat`` phase, or ``None``.
    clip, block
        In a ``listening`` block: the clip this step plays or rates, and the block's id.
    video, label
        In a ``preference`` phase: the video this step plays or rates (``None`` for the
        choice), and the neutral name the participant sees (``A``/``B``); ``block`` is the
        phase's id.
    """

    index: int
    phase: SimplePhase
    memory: MemoryCue | None = None
    memory_index: int | None = None
    repeat: str | None = None
    clip: Clip | None = None
    block: str | None = None
    video: ShownVideo | None = None
    label: str | None = None

    @property
    def kind(self) -> str:
        return self.phase.kind

    @property
    def memory_id(self) -> str | None:
        return self.memory.id if self.memory is not None else None

    def marker(self) -> dict[str, Any]:
        """The JSON payload of this step's ``phase_start`` marker."""
        out: dict[str, Any] = {
            "phase": self.phase.id,
            "kind": self.kind,
            "memory": self.memory_id,
            "index": self.index,
        }
        if self.clip is not None:
            out["block"] = self.block
            out["clip"] = self.clip.id
        if self.label is not None:  # in the file only: the participant sees "Video A"
            out["block"] = self.block
            out["video"] = self.label
            if self.video is not None:
                out["shows"] = self.video.shows
        return out


def clip_order(phase: ListeningPhase, n_clips: int, participant_id: str = "") -> list[int]:
    """Positions of the library's clips in the order ``phase`` plays them.

    ``shuffled``: a permutation drawn from ``seed`` and (``per_participant``) the pseudonym,
    the same for the same participant every time; then the first ``clips`` of it.
    """
    order = list(range(n_clips))
    if phase.order == "shuffled":
        key = f"{phase.seed}:{participant_id if phase.per_participant else ''}:{phase.id}"
        digest = hashlib.sha256(key.encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        order = [int(i) for i in rng.permutation(n_clips)]
    return order[: phase.clips or n_clips]


def _listening_steps(
    p: ListeningPhase, first: int, base_dir: Path | None, participant_id: str
) -> list[Step]:
    from protocols.library import load_library

    folder = Path(p.library)
    if not folder.is_absolute() and base_dir is not None:
        folder = base_dir / folder
    lib = load_library(folder)
    steps: list[Step] = []
    for i in clip_order(p, len(lib), participant_id):
        clip = lib.clips[i]
        seconds = clip.duration if p.clip_seconds is None else min(p.clip_seconds, clip.duration)
        play = p.model_copy(update={"id": f"{p.id}-{clip.id}", "duration": seconds})
        rate = SamPhase.model_construct(
            kind="sam",
            id=f"{p.id}-{clip.id}-rating",
            text=p.rating_text,
            scales=list(p.scales),
            max_duration=p.rating_seconds,
        )
        for q in (play, rate):
            steps.append(Step(first + len(steps), q, clip=clip, block=p.id))
    return steps


def preference_order(
    phase: PreferencePhase, memory_index: int, participant_id: str = ""
) -> tuple[str, str]:
    """What videos A and B show (``reconstruction``/``control``) for one memory.

    Counterbalanced: a participant's memories alternate between the two orders, and whether
    the first memory shows the reconstruction first is drawn from ``seed``, the phase id and
    the pseudonym, so across participants each order comes first about half the time.
    """
    key = f"{phase.seed}:{participant_id}:{phase.id}"
    first = hashlib.sha256(key.encode()).digest()[0] & 1
    if (first + memory_index) % 2 == 0:
        return ("reconstruction", "control")
    return ("control", "reconstruction")


def _preference_steps(
    p: PreferencePhase,
    mem: MemoryCue,
    mi: int,
    repeat: str | None,
    first: int,
    participant_id: str,
    reconstructions: Mapping[str, Reconstruction] | None,
) -> list[Step]:
    rec = (reconstructions or {}).get(mem.id)
    if rec is None:
        raise RecallLabError(
            f"preference phase {p.id!r}: no reconstruction of memory {mem.id!r} to show; choose "
            "the session whose `recall-lab generate --control` run made it (--reconstructions "
            "FILE, or the console's Reconstructions field)"
        )
    steps: list[Step] = []

    def add(phase, video=None, label=None) -> None:
        steps.append(Step(first + len(steps), phase, mem, mi, repeat, None, p.id, video, label))

    for label, shows in zip("AB", preference_order(p, mi, participant_id), strict=True):
        video = rec.videos[shows]
        add(
            PreferenceVideo.model_construct(
                kind="preference_video",
                id=f"{p.id}-{label}",
                text=p.text,
                duration=video.seconds,
                continue_key=p.continue_key,
                rate_valence=p.rate_valence,
            ),
            video,
            label,
        )
        add(
            PreferenceRating.model_construct(
                kind="preference_rating",
                id=f"{p.id}-{label}-rating",
                text=p.rating_text,
                scales=list(p.scales),
                max_duration=p.rating_seconds,
                continue_key=p.continue_key,
            ),
            video,
            label,
        )
    add(
        PreferenceChoice.model_construct(
            kind="preference_choice",
            id=f"{p.id}-choice",
            text=p.choice_text,
            max_duration=p.rating_seconds,
            continue_key=p.continue_key,
        )
    )
    return steps


def expand_protocol(
    protocol: Protocol,
    *,
    base_dir: str | Path | None = None,
    participant_id: str = "",
    reconstructions: Mapping[str, Reconstruction] | None = None,
) -> list[Step]:
    """The protocol's phases in the order they run, with ``repeat`` unrolled per memory, each
    ``listening`` block unrolled into a play and a rating step per clip (its library
    resolved against ``base_dir``, its order seeded with ``participant_id``), and each
    ``preference`` phase into its videos, ratings and choice (``reconstructions``: per
    memory, from :func:`protocols.reconstructions.load_reconstructions`)."""
    by_id = {m.id: (i, m) for i, m in enumerate(protocol.memories)}
    base = Path(base_dir) if base_dir is not None else None
    steps: list[Step] = []
    for p in protocol.phases:
        if isinstance(p, RepeatPhase):
            for mi, mem in enumerate(protocol.memories):
                for q in p.phases:
                    if isinstance(q, PreferencePhase):
                        steps += _preference_steps(
                            q, mem, mi, p.id, len(steps), participant_id, reconstructions
                        )
                    else:
                        steps.append(Step(len(steps), q, mem, mi, p.id))
        elif isinstance(p, ListeningPhase):
            steps += _listening_steps(p, len(steps), base, participant_id)
        elif isinstance(p, PreferencePhase):
            mi, mem = by_id[p.memory]
            steps += _preference_steps(
                p, mem, mi, None, len(steps), participant_id, reconstructions
            )
        else:
            mi, mem = by_id[p.memory] if p.memory is not None else (None, None)
            steps.append(Step(len(steps), p, mem, mi))
    return steps
