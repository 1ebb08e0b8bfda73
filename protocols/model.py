"""The protocol file format: typed, versioned models validated when a protocol is loaded.

A protocol is an ordered list of phases. Each phase has a ``kind`` (what the participant does)
and an end condition (``until``): a fixed ``duration``, the participant submitting something,
or a key press to continue, optionally bounded by ``min_duration`` and ``max_duration``. A
``repeat`` phase runs its inner phases once per memory in the ``memories`` list. The format is
documented in ``docs/protocols.md``; :func:`protocols.loader.load_protocol` reads it and reports
errors with the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The protocol format version this code reads (the ``version`` field of a file).
PROTOCOL_FORMAT_VERSION = 1

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

PHASE_KINDS = (
    "instructions",
    "baseline",
    "cue",
    "recall",
    "description",
    "sketch",
    "melody",
    "music",
    "sam",
    "listening",
    "narration",
    "preference",
    "repeat",
)

#: Phase kinds that concern one memory: inside a ``repeat`` they get the current memory,
#: outside one they must name it with ``memory:``.
MEMORY_KINDS = ("cue", "recall", "description", "sketch", "melody", "narration", "preference")

Until = Literal["time", "submit", "key"]

#: Phase kinds in which the participant submits something (and so may end on ``submit``).
SUBMIT_KINDS = ("description", "sketch", "melody", "sam", "preference")


class ProtocolValueError(ValueError):
    """A problem found across fields, with the location (``loc``) of the field to fix."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class _Model(BaseModel):
    # Unknown fields are errors: a misspelt ``durration`` must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValenceConfig(_Model):
    """How the participant reports valence during ``recall`` phases.

    ``discrete`` follows RYM: one key for positive and one for negative; the report is neutral
    once no valence key is held and none was pressed for ``neutral_after`` seconds. RYM's
    recording software mapped trigger codes 1 (POS) and 3 (NEG) to the keys ``1`` and ``3``,
    and its labelling merged presses less than 2 s apart, hence the defaults.
    ``continuous`` moves a cursor on a -1..1 scale while a key is held (``speed`` scale units
    per second) and samples it ``rate`` times per second into the ``valence`` stream, as the
    CARMA/DARMA continuous rating tools do. ``off`` records keys but reports no valence.
    """

    mode: Literal["discrete", "continuous", "off"] = "discrete"
    positive_key: str = Field("1", min_length=1)
    negative_key: str = Field("3", min_length=1)
    neutral_after: float = Field(2.0, gt=0)
    speed: float = Field(1.0, gt=0)
    rate: float = Field(20.0, gt=0, le=1000)
    start: float = Field(0.0, ge=-1, le=1)

    @model_validator(mode="after")
    def _distinct_keys(self) -> ValenceConfig:
        if self.positive_key.lower() == self.negative_key.lower():
            raise ValueError("positive_key and negative_key must be different keys")
        return self


class MemoryCue(_Model):
    """One memory to recall: an id and the cue shown to the participant.

    Cues are stored in the session file; they must not contain names of people or other
    identifying details ("the summer by the lake", not a person's name).
    """

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    cue: str = Field(min_length=1)


class _Phase(_Model):
    id: str = Field(pattern=ID_PATTERN, max_length=64)
    text: str = ""
    # allow_inf_nan: "1e309" reads as infinity, a phase that would never end.
    duration: float | None = Field(None, gt=0, allow_inf_nan=False)
    until: Until | None = None
    min_duration: float = Field(0.0, ge=0, allow_inf_nan=False)
    max_duration: float | None = Field(None, gt=0, allow_inf_nan=False)
    continue_key: str = Field("space", min_length=1)
    memory: str | None = None

    #: End condition when ``until`` is not given.
    default_until: ClassVar[str] = "time"

    @property
    def end(self) -> Until:
        """The end condition in force (``until`` or the kind's default)."""
        return self.until or self.default_until

    @model_validator(mode="after")
    def _check_end(self) -> _Phase:
        if self.end == "time" and self.duration is None:
            raise ValueError(
                f"a {self.kind} phase that ends on time needs 'duration' (seconds > 0), "
                "or set 'until' to 'submit' or 'key'"
            )
        if self.end == "submit" and self.kind not in SUBMIT_KINDS:
            raise ValueError(
                f"a {self.kind} phase has nothing to submit; 'until' can be 'time' or 'key' "
                f"here ('submit' is for {', '.join(SUBMIT_KINDS)})"
            )
        if self.end != "time" and self.duration is not None:
            raise ValueError(
                f"'duration' is only used when the phase ends on time, but this one ends on "
                f"{self.end}: remove 'duration' or use 'max_duration' as a time limit"
            )
        if self.max_duration is not None and self.max_duration < self.min_duration:
            raise ValueError("max_duration must be at least min_duration")
        return self

    def scaled(self, factor: float) -> _Phase:
        """A copy with every duration multiplied by ``factor`` (for demos and tests)."""
        upd: dict[str, Any] = {"min_duration": self.min_duration * factor}
        if self.duration is not None:
            upd["duration"] = self.duration * factor
        if self.max_duration is not None:
            upd["max_duration"] = self.max_duration * factor
        return self.model_copy(update=upd)


class InstructionsPhase(_Phase):
    """Text on the screen; by default the participant presses ``continue_key`` to go on."""

    kind: Literal["instructions"]
    default_until: ClassVar[str] = "key"


class BaselinePhase(_Phase):
    """Rest with eyes open or closed for a fixed time (the baseline for normalisation)."""

    kind: Literal["baseline"]
    eyes: Literal["open", "closed"] = "open"


class CuePhase(_Phase):
    """Show the current memory's cue."""

    kind: Literal["cue"]


class RecallPhase(_Phase):
    """Guided recall with valence reporting (``valence`` overrides the protocol's)."""

    kind: Literal["recall"]
    valence: ValenceConfig | None = None


class DescriptionPhase(_Phase):
    """The participant writes a description of the memory and submits it."""

    kind: Literal["description"]
    default_until: ClassVar[str] = "submit"
    min_chars: int = Field(0, ge=0)


class SketchPhase(_Phase):
    """The participant sketches the memory on a canvas and submits it."""

    kind: Literal["sketch"]
    default_until: ClassVar[str] = "submit"
    width: int = Field(800, gt=0, le=8192)
    height: int = Field(600, gt=0, le=8192)


class MelodyPhase(_Phase):
    """The participant gives a guiding melody: chooses an audio file and/or hums one."""

    kind: Literal["melody"]
    default_until: ClassVar[str] = "submit"
    sources: list[Literal["file", "microphone"]] = Field(
        default_factory=lambda: ["file", "microphone"], min_length=1
    )
    record_seconds: float = Field(15.0, gt=0, le=600)
    #: Folder (relative to the protocol file) the melody file chooser opens in.
    melody_dir: str | None = None


class MusicPhase(_Phase):
    """The participant listens to a piece of music (``file``, relative to the protocol)."""

    kind: Literal["music"]
    file: str | None = None


class NarrationPhase(_Phase):
    """The participant tells the memory aloud (think-aloud narration) while the camera and the
    microphone record (``recall-lab record --camera ... --microphone ...``).

    The participant presses ``start_key`` on starting to speak and ``continue_key`` when done
    (by default both are ``space``: the first press starts, the next one ends the phase);
    ``max_duration`` bounds it. ``start_key: null`` starts the narration with the phase.
    """

    kind: Literal["narration"]
    default_until: ClassVar[str] = "key"
    start_key: str | None = Field("space", min_length=1)


class PreferenceScale(_Model):
    """One rating scale of a ``preference`` phase, asked after each video (``min``..``max``,
    ``low``/``high`` the words at its ends)."""

    id: str = Field(pattern=ID_PATTERN, max_length=64)
    text: str = Field(min_length=1)
    min: int = Field(1, ge=0, le=10)
    max: int = Field(7, ge=1, le=11)
    low: str = ""
    high: str = ""

    @model_validator(mode="after")
    def _range(self) -> PreferenceScale:
        if self.max <= self.min:
            raise ValueError(f"scale {self.id!r}: max must be above min")
        return self


def _default_scales() -> list[PreferenceScale]:
    return [
        PreferenceScale(
            id="match",
            text="How well did this video match your memory?",
            low="not at all",
            high="completely",
        )
    ]


class PreferencePhase(_Phase):
    """The participant judges a memory's reconstruction blind, beside its reordered control
    (``recall-lab generate --control``; the session that made them is chosen with
    ``--reconstructions FILE``).

    It runs as five steps: video A (kind ``preference_video``; with ``rate_valence`` the
    participant rates valence continuously with the protocol's valence keys while watching),
    the ``scales`` for A (``preference_rating``), video B and its ratings, then which of the
    two fits the memory better (``preference_choice``). Which video is A is counterbalanced
    (``seed``, the pseudonym and the memory's position) and never shown: the participant sees
    only "Video A" and "Video B"; the file records which was which.
    """

    kind: Literal["preference"]
    default_until: ClassVar[str] = "submit"
    scales: list[PreferenceScale] = Field(default_factory=_default_scales, min_length=1)
    choice_text: str = "Which video fits your memory better?"
    rating_text: str = "About the video you just watched:"
    rate_valence: bool = True
    seed: int = 0
    #: Which generation run of the reconstructions' session (``latest`` or ``run-NNN``).
    run: str = Field("latest", pattern=r"^(latest|run-\d{3,})$")
    #: Longest time for the ratings and the choice (None: no limit).
    rating_seconds: float | None = Field(None, gt=0, allow_inf_nan=False)

    def scaled(self, factor: float) -> PreferencePhase:
        """The limit on the ratings and the choice is scaled; the videos keep their length."""
        copy = super().scaled(factor)
        if self.rating_seconds is None:
            return copy
        return copy.model_copy(update={"rating_seconds": self.rating_seconds * factor})

    @model_validator(mode="after")
    def _unique_scales(self) -> PreferencePhase:
        ids = [s.id for s in self.scales]
        if len(set(ids)) != len(ids):
            raise ValueError("preference scale ids must be unique")
        return self


class PreferenceVideo(_Phase):
    """Internal step of a ``preference`` phase: one video plays (never written in a protocol)."""

    kind: Literal["preference_video"]
    rate_valence: bool = True


class PreferenceRating(_Phase):
    """Internal step of a ``preference`` phase: the scales for the video just watched."""

    kind: Literal["preference_rating"]
    default_until: ClassVar[str] = "submit"
    scales: list[PreferenceScale] = Field(default_factory=_default_scales)


class PreferenceChoice(_Phase):
    """Internal step of a ``preference`` phase: which video fits the memory better."""

    kind: Literal["preference_choice"]
    default_until: ClassVar[str] = "submit"


class SamPhase(_Phase):
    """Self-Assessment Manikin ratings, 1-9, of the scales listed; ends when all are given."""

    kind: Literal["sam"]
    default_until: ClassVar[str] = "submit"
    scales: list[Literal["valence", "arousal"]] = Field(
        default_factory=lambda: ["valence", "arousal"], min_length=1
    )


class ListeningPhase(_Phase):
    """A music-listening block: clips of a library (``protocols.library``) played one after
    another, each followed by a Self-Assessment Manikin rating of the ``scales``.

    The block runs as two steps per clip: ``<id>-<clip>`` (kind ``listening``, as long as the
    clip or ``clip_seconds``) and ``<id>-<clip>-rating`` (kind ``sam``, ends when every scale
    is rated, or after ``rating_seconds``). ``order: shuffled`` plays the clips in an order
    seeded by ``seed`` and, with ``per_participant``, by the participant's pseudonym, so each
    participant hears another order and a rerun the same one.
    """

    kind: Literal["listening"]
    default_until: ClassVar[str] = "time"
    library: str = Field(min_length=1)
    clips: int | None = Field(None, gt=0)
    order: Literal["shuffled", "library"] = "shuffled"
    seed: int = 0
    per_participant: bool = True
    clip_seconds: float | None = Field(None, gt=0, le=3600)
    rating_seconds: float | None = Field(None, gt=0, le=600)
    scales: list[Literal["valence", "arousal"]] = Field(
        default_factory=lambda: ["valence", "arousal"], min_length=1
    )
    rating_text: str = "How did this music make you feel?"

    @model_validator(mode="after")
    def _check_end(self) -> ListeningPhase:
        if self.until != "time" and self.until is not None:
            raise ValueError(
                "a listening phase runs its clips and ratings; leave out 'until' (the clip "
                "length or clip_seconds sets each clip's time)"
            )
        if self.duration is not None:
            raise ValueError(
                "a listening phase has no 'duration': each clip plays for its length, or "
                "clip_seconds; rating_seconds limits each rating"
            )
        return self

    def scaled(self, factor: float) -> ListeningPhase:
        upd: dict[str, Any] = {"min_duration": self.min_duration * factor}
        for name in ("clip_seconds", "rating_seconds", "max_duration"):
            value = getattr(self, name)
            if value is not None:
                upd[name] = value * factor
        return self.model_copy(update=upd)


class RepeatPhase(_Model):
    """Run ``phases`` once for every memory (``over: memories``)."""

    kind: Literal["repeat"]
    id: str = Field(pattern=ID_PATTERN, max_length=64)
    over: Literal["memories"] = "memories"
    phases: list[Phase] = Field(min_length=1)

    @field_validator("phases")
    @classmethod
    def _no_nested_repeat(cls, phases: list[Any]) -> list[Any]:
        if any(isinstance(p, RepeatPhase) for p in phases):
            raise ValueError("a repeat cannot contain another repeat")
        return phases


Phase = Annotated[
    InstructionsPhase
    | BaselinePhase
    | CuePhase
    | RecallPhase
    | DescriptionPhase
    | SketchPhase
    | MelodyPhase
    | MusicPhase
    | SamPhase
    | ListeningPhase
    | NarrationPhase
    | PreferencePhase
    | RepeatPhase,
    Field(discriminator="kind"),
]

RepeatPhase.model_rebuild()

SimplePhase = (
    InstructionsPhase
    | BaselinePhase
    | CuePhase
    | RecallPhase
    | DescriptionPhase
    | SketchPhase
    | MelodyPhase
    | MusicPhase
    | SamPhase
    | ListeningPhase
    | NarrationPhase
    | PreferencePhase
    | PreferenceVideo
    | PreferenceRating
    | PreferenceChoice
)


class CaptureConfig(_Model):
    """When the participant's camera and microphone record (``record --camera/--microphone``).

    Each lists the phase kinds or phase ids during which the device records; left out, it
    records the whole session. Outside those phases nothing is kept of it: frames and sound
    are not stored (the device stays open, so it resumes at once), and the engine writes a
    ``protocol`` ``capture`` event at every change.
    """

    camera: list[str] | None = None
    microphone: list[str] | None = None

    def records(self, device: str, kind: str, phase_id: str, block: str | None = None) -> bool:
        """Whether ``device`` records in a phase of ``kind`` and ``phase_id`` (a listening
        block's steps also match the block's own id)."""
        allowed = getattr(self, device)
        return allowed is None or kind in allowed or phase_id in allowed or block in allowed


class Protocol(_Model):
    """A session protocol, as read from a YAML file."""

    version: int
    name: str = Field(pattern=ID_PATTERN, max_length=64)
    title: str = ""
    description: str = ""
    valence: ValenceConfig = Field(default_factory=ValenceConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    memories: list[MemoryCue] = Field(default_factory=list)
    phases: list[Phase] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != PROTOCOL_FORMAT_VERSION:
            raise ValueError(
                f"protocol format version {v} is not supported; this recall-lab reads "
                f"version {PROTOCOL_FORMAT_VERSION}"
            )
        return v

    @field_validator("memories")
    @classmethod
    def _unique_memories(cls, memories: list[MemoryCue]) -> list[MemoryCue]:
        seen: set[str] = set()
        for m in memories:
            if m.id in seen:
                raise ValueError(f"memory id {m.id!r} is used twice; give each memory its own id")
            seen.add(m.id)
        return memories

    @model_validator(mode="after")
    def _check_capture(self) -> Protocol:
        ids = set()
        for p in self.phases:
            ids.add(p.id)
            if isinstance(p, RepeatPhase):
                ids.update(q.id for q in p.phases)
        for device in ("camera", "microphone"):
            for name in getattr(self.capture, device) or []:
                if name not in PHASE_KINDS and name not in ids:
                    raise ProtocolValueError(
                        ("capture", device),
                        f"{name!r} is neither a phase kind ({', '.join(PHASE_KINDS)}) nor a "
                        "phase id of this protocol",
                    )
        return self

    @model_validator(mode="after")
    def _check_phases(self) -> Protocol:
        ids = {m.id for m in self.memories}
        seen: set[str] = set()
        for i, p in enumerate(self.phases):
            if isinstance(p, RepeatPhase):
                if not self.memories:
                    raise ProtocolValueError(
                        ("memories",),
                        f"phase {p.id!r} repeats over memories but 'memories' is empty; list "
                        "at least one memory (id and cue)",
                    )
                located = [((i,), p)] + [((i, "phases", j), q) for j, q in enumerate(p.phases)]
            else:
                located = [((i,), p)]
            for where, q in located:
                loc = ("phases", *where)
                if q.id in seen:
                    raise ProtocolValueError(
                        (*loc, "id"), f"phase id {q.id!r} is used twice; phase ids must be unique"
                    )
                seen.add(q.id)
                if isinstance(q, RepeatPhase):
                    continue
                if q.memory is not None and q.memory not in ids:
                    raise ProtocolValueError(
                        (*loc, "memory"),
                        f"memory {q.memory!r} is not in 'memories'; allowed: "
                        f"{', '.join(sorted(ids)) or 'none listed'}",
                    )
                if not isinstance(p, RepeatPhase) and q.kind in MEMORY_KINDS and q.memory is None:
                    raise ProtocolValueError(
                        loc,
                        f"{q.kind} phase {q.id!r} is outside a repeat: name its memory with "
                        "'memory: <id>' or put it inside a 'repeat' phase",
                    )
        return self

    @property
    def label(self) -> str:
        """``name`` and format version, as stored in the session file's ``protocol``."""
        return f"{self.name} (protocol format {self.version})"

    def simple_phases(self) -> Iterator[SimplePhase]:
        """Every phase as written, those inside a ``repeat`` in its place (not per memory)."""
        for p in self.phases:
            yield from (p.phases if isinstance(p, RepeatPhase) else [p])

    def scaled(self, factor: float) -> Protocol:
        """A copy that runs ``factor`` times as long (``0.1``: ten times faster, for demos).

        Phase durations and the valence hold time are multiplied by ``factor``; the continuous
        cursor speed is divided by it, so a scaled session behaves like the real one, faster.
        """
        if factor <= 0:
            raise ValueError("time scale must be > 0")

        def scale_valence(v: ValenceConfig) -> ValenceConfig:
            # the whole session runs faster: the hold time shrinks and the cursor moves faster
            return v.model_copy(
                update={"neutral_after": v.neutral_after * factor, "speed": v.speed / factor}
            )

        def scale(p: Any) -> Any:
            if isinstance(p, RepeatPhase):
                return p.model_copy(update={"phases": [scale(q) for q in p.phases]})
            q = p.scaled(factor)
            if isinstance(q, RecallPhase) and q.valence is not None:
                q = q.model_copy(update={"valence": scale_valence(q.valence)})
            return q

        return self.model_copy(
            update={
                "phases": [scale(p) for p in self.phases],
                "valence": scale_valence(self.valence),
            }
        )
