"""Run a protocol as a state machine on the LSL clock, with no Qt and no clock of its own.

The GUI (or the simulated participant, or a test) only forwards timestamped inputs: key downs
and ups with their LSL time from the key handler, a description submitted, sketch points and
the finished sketch, melody audio, SAM ratings, and the experimenter's start, pause, resume,
skip and abort. It calls :meth:`ProtocolEngine.tick` on a timer (every 20-50 ms). The engine
decides every phase change, emits :class:`~data_schema.types.Event` objects through ``emit``
(pass ``Recorder.add_event``; the recorder forwards them to the LSL marker outlet), hands
participant content (descriptions, sketches, melodies) to ``store`` (pass a
:class:`protocols.storage.MemoryWriter`'s ``put`` so the disk work happens off the GUI thread)
and continuous valence samples to ``valence_samples`` (pass a
:class:`protocols.valence_source.ValenceSource`'s ``push``). :meth:`ProtocolEngine.display`
says what the participant screen should show.

Keys: one physical press is one ``key_down`` and one ``key_up``. A down for a key already held
is an auto-repeat: not recorded, counted in the ``key_up``'s ``repeats``. An up for a key never
seen going down (pressed before the protocol, or during a text phase) is not recorded. When a
phase ends with keys held, each gets its ``key_up`` at the phase boundary (``released_by:
phase_end``) and its later physical release and repeats are ignored, so a key held from recall
into the description never types there. In phases where the participant types (``description``)
keys are text, not events: nothing typed is ever recorded as a key event (privacy: the text is
the participant's memory, stored as the description).

Drafts: the description is handed to the engine as it is typed (:meth:`draft_description`) and
stored at most every ``draft_interval`` seconds while it changes, marked not submitted; a phase
that ends without Submit stores the last draft (event ``description_unsubmitted``).

Timing: a phase that ends on time ends at exactly ``start + duration`` (plus any pause), not at
the tick that noticed it, and the next phase starts at that same instant. An input is first
brought up to its own timestamp, so a key press that happened just after a phase ended belongs
to the next phase even if the tick that ends the phase has not run yet.

Events emitted (see ``docs/protocols.md``; conventions from ``data_schema/SPEC.md``):

========== ===================== ====================================================
source     label                 value
========== ===================== ====================================================
protocol   session_start         JSON ``{"protocol": name, "version": n}``
protocol   phase_start           JSON ``{"phase", "kind", "memory", "index"}``
protocol   phase_end             same plus ``"reason"``: time, submit, key, timeout,
                                 skip, abort
protocol   paused / resumed      phase id
protocol   session_end           JSON ``{"reason": "completed" | "aborted", ...}``
protocol   capture               JSON ``{"camera": bool, "microphone": bool}``: which
                                 devices record from now on (the protocol's
                                 ``capture`` section), at every change
keyboard   key_down / key_up     JSON ``{"key", "valence", "phase"}``, valence null
                                 for keys that mean none; ``key_up`` adds
                                 ``"repeats"`` (auto-repeats during the hold) and
                                 ``"released_by": "phase_end"`` when the phase ended
                                 while the key was held
participant valence_state        positive / negative / neutral (discrete mode changes)
participant valence_rating       cursor value when a key is released (continuous mode)
participant sam_valence /        "1".."9"
           sam_arousal
stimulus   clip_start            JSON ``{"clip", "block", "file", "sha256", "title",
                                 "offset", "output_latency"}`` at the time the
                                 clip's first sample reaches the loudspeaker (the
                                 player's call time plus the output latency the
                                 audio device reports; null when unknown)
stimulus   clip_end              JSON ``{"clip", "block", "played"}`` (seconds)
stimulus   clip_error            JSON ``{"clip", "block", "error"}``: not played
participant description_submitted JSON ``{"memory", "chars"}``
participant description_unsubmitted JSON ``{"memory", "chars", "reason"}``: the phase
                                 ended (timeout, skip, abort) before Submit; the
                                 draft is stored, marked not submitted
participant sketch_unsubmitted   JSON ``{"memory", "points", "width", "height",
                                 "reason"}``: as above for a sketch
participant sketch_submitted     JSON ``{"memory", "points", "width", "height"}``
participant melody_submitted     JSON ``{"memory", "origin", "seconds"}``
participant narration_start      JSON ``{"memory", "key"}``: the participant began to
                                 speak (the start key's time; ``key`` null when the
                                 narration starts with the phase)
participant narration_end        JSON ``{"memory", "reason", "seconds"}``: the
                                 narration ended (reason as in ``phase_end``)
========== ===================== ====================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from data_schema.types import Event
from protocols.library import Clip
from protocols.model import (
    BaselinePhase,
    DescriptionPhase,
    MelodyPhase,
    MusicPhase,
    NarrationPhase,
    PreferenceChoice,
    PreferenceRating,
    PreferenceVideo,
    Protocol,
    RecallPhase,
    SamPhase,
    SimplePhase,
    SketchPhase,
)
from protocols.reconstructions import Reconstruction, ShownVideo
from protocols.steps import Step, expand_protocol
from protocols.valence import Valence, ValenceReporter, normalize_key

log = logging.getLogger(__name__)

#: A down for a key held with no down or repeat for this long (s) is a new press whose previous
#: key up was lost: operating systems repeat a held key after at most ~0.7 s, then every
#: 20-100 ms.
REPEAT_GAP = 1.0

EngineState = Literal["ready", "running", "paused", "finished", "aborted"]
Expects = Literal[
    "nothing",
    "continue_key",
    "valence_keys",
    "text",
    "sketch",
    "melody",
    "sam",
    "ratings",
    "choice",
]


# ---------------------------------------------------------------------- outputs
@dataclass(frozen=True)
class MemoryStarted:
    """The first phase of a memory began: create ``/memories/<memory_id>``."""

    memory_id: str
    cue: str
    index: int
    timestamp: float


@dataclass(frozen=True)
class DescriptionSubmitted:
    """The participant's written description of a memory (``submitted=False``: a draft)."""

    memory_id: str
    text: str
    timestamp: float
    submitted: bool = True


@dataclass(frozen=True)
class SketchPoints:
    """Points drawn (``data_schema.writer.STROKE_DTYPE`` rows), sent while drawing."""

    memory_id: str
    points: np.ndarray


@dataclass(frozen=True)
class SketchFinished:
    """The final sketch as PNG bytes (``submitted=False``: the phase ended before Submit)."""

    memory_id: str
    png: bytes
    timestamp: float
    width: int
    height: int
    submitted: bool = True


@dataclass(frozen=True)
class MelodyAudio:
    """A chunk of guiding-melody audio (float32 [n] or [n x channels], -1..1)."""

    memory_id: str
    audio: np.ndarray
    sample_rate: int
    origin: str
    start_timestamp: float | None = None


MemoryRecord = MemoryStarted | DescriptionSubmitted | SketchPoints | SketchFinished | MelodyAudio


@dataclass(frozen=True)
class DisplayState:
    """What the participant screen (and the console) should show now.

    Attributes
    ----------
    state
        ``ready``, ``running``, ``paused``, ``finished`` or ``aborted``.
    step_index, n_steps
        Progress through the expanded protocol.
    phase_id, kind, text
        The current phase and its instruction text (empty before start and after the end).
    memory_id, cue
        The memory the phase concerns, and its cue.
    elapsed
        Seconds in this phase, pauses excluded.
    remaining
        Countdown in seconds for phases with a duration or ``max_duration``; ``None`` if the
        phase waits for the participant without a limit.
    expects
        The input the participant screen should offer: ``nothing``, ``continue_key``,
        ``valence_keys``, ``text``, ``sketch``, ``melody`` or ``sam``.
    can_continue
        ``False`` until ``min_duration`` has passed (grey out the submit button).
    continue_key
        Key that ends a phase with ``until: key``.
    valence_mode, valence, cursor
        Valence reporting in a recall phase: mode (``discrete``/``continuous``/``off``), the
        current report, and the continuous cursor in [-1, 1].
    positive_key, negative_key
        The valence keys, to show on screen.
    phase
        The phase model itself, for kind-specific fields (``eyes``, ``scales``, ``width``...).
    sam_pending
        SAM scales still to rate in a ``sam`` phase.
    music_path
        A ``music`` phase's file, resolved against the protocol's folder.
    clip, block
        In a ``listening`` block: the clip to play (kind ``listening``) or being rated (kind
        ``sam``), and the block's id. The display plays the clip and reports when it started
        (:meth:`ProtocolEngine.clip_started`) or why it could not (``clip_failed``).
    """

    state: EngineState
    step_index: int
    n_steps: int
    phase_id: str = ""
    kind: str = ""
    text: str = ""
    memory_id: str | None = None
    cue: str | None = None
    elapsed: float = 0.0
    remaining: float | None = None
    expects: Expects = "nothing"
    can_continue: bool = True
    continue_key: str | None = None
    valence_mode: str | None = None
    valence: Valence = "neutral"
    cursor: float | None = None
    positive_key: str | None = None
    negative_key: str | None = None
    phase: SimplePhase | None = None
    sam_pending: tuple[str, ...] = ()
    music_path: Path | None = None
    clip: Clip | None = None
    block: str | None = None
    #: In a ``preference`` phase: the video to play or just played (``None`` for the choice);
    #: the display shows only :attr:`video_label` (``A``/``B``), never what it shows.
    video: ShownVideo | None = None
    video_label: str | None = None
    #: Scales still to rate in a ``preference_rating`` step.
    ratings_pending: tuple[str, ...] = ()
    #: In a ``narration`` phase: whether the participant has begun to speak (``None`` in
    #: other phases). Before that, ``continue_key`` is the phase's ``start_key``.
    narrating: bool | None = None
    #: Whether the camera and the microphone record now (the protocol's ``capture``).
    capture: dict[str, bool] = field(default_factory=lambda: {"camera": True, "microphone": True})
    #: Since when (LSL time) each device's ``capture`` setting holds (the phase boundary that
    #: switched it; absent before the protocol started): devices switch by capture time.
    capture_since: dict[str, float] = field(default_factory=dict)


_EXPECTS: dict[str, Expects] = {
    "description": "text",
    "sketch": "sketch",
    "melody": "melody",
    "sam": "sam",
}


@dataclass
class _Run:
    """Timing of the current step."""

    step: Step
    start: float
    paused_total: float = 0.0
    end_request: tuple[float, str] | None = None  # (time, reason) asked by the participant
    reporter: ValenceReporter | None = None
    sam: dict[str, int] = field(default_factory=dict)
    sketch_points: int = 0
    sketch_submitted: bool = False
    melody_samples: int = 0
    melody_rate: int = 0
    draft: tuple[str, float] | None = None  # latest description text and when it was typed
    draft_stored: tuple[str, float] | None = None  # the version last handed to ``store``
    description_submitted: bool = False
    clip_start: float | None = None  # when the clip's sound began (listening steps)
    narration_start: float | None = None  # when the participant began to speak
    video_start: float | None = None  # when a preference video's sound began
    late_start: float = 0.0  # how long after the step began its video started (runs longer)
    ratings: dict[str, int] = field(default_factory=dict)  # a preference video's scales
    narration_paused: float = 0.0  # the phase's pauses before that


@dataclass
class _HeldKey:
    """A key the engine saw go down and not yet up."""

    down: float
    phase: str | None
    valence: Valence | None
    repeats: int = 0
    last: float = 0.0  # the last down or auto-repeat

    def __post_init__(self) -> None:
        self.last = max(self.last, self.down)


# ---------------------------------------------------------------------- engine
class ProtocolEngine:
    """Run ``protocol``, fed timestamped inputs; emits events and memory records.

    Parameters
    ----------
    protocol
        A validated protocol (:func:`protocols.loader.load_protocol`).
    emit
        Called with every :class:`Event` (markers, keys, ratings), in time order per source.
        Must return at once (``Recorder.add_event`` does).
    store
        Called with every :class:`MemoryRecord` (descriptions, sketches, melody audio); must
        return at once (``MemoryWriter.put`` queues it for a background thread).
    valence_samples
        Called with ``(values [n], timestamps [n])`` continuous valence cursor samples.
    on_change
        Called with the new :class:`DisplayState` whenever the phase or the run state changes.
    base_dir
        Folder that relative file names in the protocol (music, libraries) are resolved
        against.
    participant_id
        The pseudonym; seeds the clip order of ``listening`` blocks (``per_participant``) and
        the counterbalancing of ``preference`` phases.
    reconstructions
        Per memory, the reconstruction and its control a ``preference`` phase shows
        (:func:`protocols.reconstructions.load_reconstructions`).

    Notes
    -----
    Every method takes the LSL time of the input (``pylsl.local_clock()`` read in the event
    handler). Inputs in the ``ready``, ``finished`` and ``aborted`` states are recorded as events
    where meaningful but change nothing. Not thread-safe: call from one thread (the GUI thread).
    """

    def __init__(
        self,
        protocol: Protocol,
        *,
        emit: Callable[[Event], None] | None = None,
        store: Callable[[MemoryRecord], None] | None = None,
        valence_samples: Callable[[np.ndarray, np.ndarray], None] | None = None,
        on_change: Callable[[DisplayState], None] | None = None,
        base_dir: str | Path | None = None,
        draft_interval: float = 1.0,
        participant_id: str = "",
        reconstructions: Mapping[str, Reconstruction] | None = None,
    ) -> None:
        self.protocol = protocol
        self.draft_interval = float(draft_interval)
        self.steps = expand_protocol(
            protocol,
            base_dir=base_dir,
            participant_id=participant_id,
            reconstructions=reconstructions,
        )
        self._emit_cb = emit
        self._store_cb = store
        self._samples_cb = valence_samples
        self._change_cb = on_change
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self._state: EngineState = "ready"
        self._run: _Run | None = None
        self._index = -1
        self._now = -np.inf
        self._paused_at: float | None = None
        self._memories_started: set[str] = set()
        self._held: dict[str, _HeldKey] = {}
        # Keys physically down whose release (and repeats) must not be recorded: released at a
        # phase boundary, pressed in a text phase, or pressed before the engine saw them.
        self._ignored: dict[str, float] = {}  # key -> its last down or repeat
        self.events: list[Event] = []  # everything emitted, for summaries and tests
        # the devices' state as last announced (a "capture" event at every change)
        self._capture_state: dict[str, bool] = {"camera": True, "microphone": True}
        self._capture_since: dict[str, float] = {}

    # ------------------------------------------------------------------ queries
    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def done(self) -> bool:
        """True once the protocol finished or was aborted."""
        return self._state in ("finished", "aborted")

    @property
    def current(self) -> Step | None:
        """The step now running (or paused), ``None`` before start and after the end."""
        return self._run.step if self._run is not None else None

    @property
    def phase_started_at(self) -> float | None:
        """LSL time the current phase started (``None`` when no phase is running)."""
        return self._run.start if self._run is not None else None

    def display(self, now: float | None = None) -> DisplayState:
        """What to show at ``now`` (default: the latest time the engine has seen)."""
        t = self._now if now is None else max(now, self._now)
        run = self._run
        if run is None:
            return DisplayState(
                self._state,
                max(self._index, 0),
                len(self.steps),
                capture=self._capture(None),
                capture_since=dict(self._capture_since),
            )
        step, phase = run.step, run.step.phase
        elapsed = max(0.0, self._elapsed(run, t))
        limit = phase.duration if phase.end == "time" else phase.max_duration
        if limit is not None and phase.end == "time":
            limit += run.late_start
        remaining = None if limit is None else max(0.0, limit - elapsed)
        if isinstance(phase, RecallPhase) or (
            isinstance(phase, PreferenceVideo) and phase.rate_valence
        ):
            expects: Expects = "valence_keys"
        elif isinstance(phase, PreferenceRating):
            expects = "ratings"
        elif isinstance(phase, PreferenceChoice):
            expects = "choice"
        elif phase.end == "key":
            expects = "continue_key"
        else:
            expects = _EXPECTS.get(phase.kind, "nothing")
        vcfg = self._valence_config(phase)
        rep = run.reporter
        music = None
        if isinstance(phase, MusicPhase) and phase.file:
            music = Path(phase.file)
            if not music.is_absolute() and self.base_dir is not None:
                music = self.base_dir / music
        continue_key = phase.continue_key if phase.end == "key" else None
        narrating = None
        if isinstance(phase, NarrationPhase):
            narrating = run.narration_start is not None
            if not narrating:
                continue_key = phase.start_key
        ratings_pending: tuple[str, ...] = ()
        if isinstance(phase, PreferenceRating):
            ratings_pending = tuple(s.id for s in phase.scales if s.id not in run.ratings)
        pending: tuple[str, ...] = ()
        if isinstance(phase, SamPhase):
            pending = tuple(s for s in phase.scales if s not in run.sam)
        return DisplayState(
            state=self._state,
            step_index=step.index,
            n_steps=len(self.steps),
            phase_id=phase.id,
            kind=phase.kind,
            text=phase.text,
            memory_id=step.memory_id,
            cue=step.memory.cue if step.memory is not None else None,
            elapsed=elapsed,
            remaining=remaining,
            expects=expects,
            can_continue=elapsed >= phase.min_duration,
            continue_key=continue_key,
            valence_mode=vcfg.mode if vcfg is not None else None,
            valence=rep.state if rep is not None else "neutral",
            cursor=rep.cursor if rep is not None and rep.mode == "continuous" else None,
            positive_key=vcfg.positive_key if vcfg is not None else None,
            negative_key=vcfg.negative_key if vcfg is not None else None,
            phase=phase,
            sam_pending=pending,
            music_path=music,
            clip=step.clip,
            block=step.block,
            capture=self._capture(step),
            capture_since=dict(self._capture_since),
            narrating=narrating,
            video=step.video,
            video_label=step.label,
            ratings_pending=ratings_pending,
        )

    # ------------------------------------------------------------------ experimenter
    def start(self, now: float) -> None:
        """Begin the protocol at ``now``: ``session_start`` and the first ``phase_start``."""
        if self._state != "ready":
            raise RuntimeError(f"the protocol engine was already started (state {self._state})")
        self._now = now
        self._state = "running"
        self._event(
            now,
            "protocol",
            "session_start",
            self._json({"protocol": self.protocol.name, "version": self.protocol.version}),
        )
        self._enter(0, now)
        self._changed()

    def tick(self, now: float) -> DisplayState:
        """Advance to ``now``: end phases whose time is up, start the next ones.

        Also stores the description draft when it changed ``draft_interval`` seconds ago.
        """
        self._advance(now)
        run = self._run
        if (
            run is not None
            and run.draft is not None
            and run.draft != run.draft_stored
            and not run.description_submitted
            and (run.draft_stored is None or now - run.draft_stored[1] >= self.draft_interval)
        ):
            self._store_draft(run)
        return self.display(now)

    def _store_draft(self, run: _Run) -> None:
        text, t = run.draft
        run.draft_stored = run.draft
        self._store(DescriptionSubmitted(run.step.memory.id, text, t, submitted=False))

    def pause(self, now: float) -> None:
        """Stop the phase clock (the experimenter's pause); inputs are still recorded."""
        self._advance(now)
        if self._state != "running":
            return
        self._state = "paused"
        self._paused_at = now
        self._event(now, "protocol", "paused", self._run.step.phase.id)
        self._changed()

    def resume(self, now: float) -> None:
        """Restart the phase clock; the current phase gets the paused time back."""
        if self._state != "paused":
            return
        run = self._run
        run.paused_total += max(0.0, now - self._paused_at)
        self._paused_at = None
        if run.end_request is not None and run.end_request[0] < now:
            # a submit or key press during the pause takes effect when the session goes on
            run.end_request = (now, run.end_request[1])
        self._state = "running"
        self._now = max(self._now, now)
        self._event(now, "protocol", "resumed", self._run.step.phase.id)
        self._changed()
        self._advance(now)

    def skip(self, now: float) -> None:
        """End the current phase now (reason ``skip``) and go to the next."""
        self._advance(now)
        if self._run is None or self.done:
            return
        if self._state == "paused":
            self.resume(now)
        self._end_and_next(now, "skip")
        self._changed()

    def abort(self, now: float, reason: str = "") -> None:
        """End the session now: the current phase ends (reason ``abort``), nothing follows."""
        self._advance(now)
        if self.done or self._state == "ready":
            self._state = "aborted"
            return
        self._leave(now, "abort")
        self._state = "aborted"
        self._event(
            now,
            "protocol",
            "session_end",
            self._json({"reason": "aborted", "detail": reason, "at_step": self._index}),
        )
        self._capture_event(now, None)
        self._changed()

    # ------------------------------------------------------------------ participant
    @property
    def held_keys(self) -> dict[str, float]:
        """Keys recorded as down and not yet up: key -> LSL time it went down."""
        return {k: h.down for k, h in self._held.items()}

    @property
    def takes_text(self) -> bool:
        """True while the current phase is one where the participant types (``description``)."""
        run = self._run
        return run is not None and isinstance(run.step.phase, DescriptionPhase)

    def key_down(self, key: str, timestamp: float, *, auto_repeat: bool = False) -> None:
        """A key went down at ``timestamp`` (LSL time from the input device or key handler).

        Recorded as a ``keyboard``/``key_down`` event with the valence it means in this phase
        (``positive``/``negative`` for the valence keys of a recall phase, ``null`` for any
        other key, so analyses never mistake a continue key for a report). A down for a key
        already down is an auto-repeat, whatever ``auto_repeat`` says (X11 and Qt do not
        always flag them): it is counted, never recorded as a press. ``auto_repeat=True`` for
        a key the engine never saw go down means it was pressed earlier (before the protocol,
        in a text phase): ignored until it is released. Keys in a text phase are text, not
        events. The phase's ``continue_key`` ends an ``until: key`` phase.
        """
        self._advance(timestamp)
        k = normalize_key(key)
        held = self._held.get(k)
        fresh = not auto_repeat  # a new press only if nothing repeated it lately (lost key up)
        if held is not None:
            if not (fresh and timestamp - held.last > REPEAT_GAP):
                held.repeats += 1
                held.last = timestamp
                return
            del self._held[k]
            self._release(k, held, held.last, released_by="missing_key_up")
        if k in self._ignored:
            if not (fresh and timestamp - self._ignored[k] > REPEAT_GAP):
                self._ignored[k] = timestamp
                return
            del self._ignored[k]
        if auto_repeat or self.takes_text:
            self._ignored[k] = timestamp
            return
        run = self._run
        valence: Valence | None = None  # not a valence key here
        if run is not None and run.reporter is not None and self._state != "ready":
            valence = run.reporter.meaning(k)
            run.reporter.key_down(k, timestamp)
            self._flush_valence(run)
        phase = run.step.phase.id if run is not None else None
        self._held[k] = _HeldKey(timestamp, phase, valence)
        self._key_event(timestamp, "key_down", k, valence, phase)
        if run is None:
            return
        p = run.step.phase
        if isinstance(p, NarrationPhase) and p.start_key and run.narration_start is None:
            # Before the participant began to speak only the start key counts (with the
            # default keys, the first space starts and the next one ends).
            if self._state == "running" and k == normalize_key(p.start_key):
                self._narration_start(run, timestamp, k)
                self._changed()
            return
        if (
            self._state in ("running", "paused")
            and p.end == "key"
            and k == normalize_key(p.continue_key)
        ):
            self._request_end(timestamp, "key")

    def key_up(self, key: str, timestamp: float) -> None:
        """A key went up at ``timestamp``; recorded only if its ``key_down`` was."""
        self._advance(timestamp)
        k = normalize_key(key)
        if k in self._ignored:
            del self._ignored[k]
            return
        held = self._held.pop(k, None)
        if held is None:
            log.debug("key %r went up without a recorded down: not recorded", k)
            return
        self._release(k, held, timestamp)

    def _release(
        self, k: str, held: _HeldKey, timestamp: float, released_by: str | None = None
    ) -> None:
        run = self._run
        if (
            run is not None
            and run.reporter is not None
            and held.phase == run.step.phase.id
            and self._state != "ready"
        ):
            was_held = run.reporter.key_up(k, timestamp)
            self._flush_valence(run)
            if was_held and run.reporter.mode == "continuous":
                self._event(
                    timestamp, "participant", "valence_rating", f"{run.reporter.cursor:.4f}"
                )
        extra: dict[str, Any] = {"repeats": held.repeats}
        if released_by is not None:
            extra["released_by"] = released_by
        self._key_event(timestamp, "key_up", k, held.valence, held.phase, extra)

    def submit_description(self, text: str, timestamp: float) -> bool:
        """The participant submitted a written description; returns whether it was accepted.

        It is refused (``False``, nothing stored) when shorter than the phase's ``min_chars``.
        """
        self._advance(timestamp)
        run = self._run
        if run is None or run.step.memory is None:
            log.warning("description submitted outside a memory phase: ignored")
            return False
        phase = run.step.phase
        if isinstance(phase, DescriptionPhase) and len(text.strip()) < phase.min_chars:
            return False
        mid = run.step.memory.id
        run.description_submitted = True
        run.draft = run.draft_stored = (text, timestamp)
        self._store(DescriptionSubmitted(mid, text, timestamp))
        self._event(
            timestamp,
            "participant",
            "description_submitted",
            self._json({"memory": mid, "chars": len(text)}),
        )
        if isinstance(phase, DescriptionPhase):
            self._request_end(timestamp, "submit")
        return True

    def draft_description(self, text: str, timestamp: float) -> None:
        """The description as it stands while being typed (call on every change).

        Kept in memory at once and stored (``submitted=False``) at most every
        ``draft_interval`` seconds by :meth:`tick`, and when the phase ends without Submit,
        so a crash or a timeout never loses what was written.
        """
        run = self._run
        if (
            run is None
            or run.step.memory is None
            or not isinstance(run.step.phase, DescriptionPhase)
        ):
            return
        if run.description_submitted:
            return
        run.draft = (str(text), float(timestamp))

    def keep_unsubmitted_sketch(
        self,
        memory_id: str,
        png: bytes,
        timestamp: float,
        *,
        width: int,
        height: int,
        points: int,
        reason: str,
    ) -> None:
        """Store the canvas of a sketch phase that ended without Submit (timeout, skip, abort).

        Called by the display after the phase ended, with the canvas as it was left; stored
        with ``submitted=False`` and the event ``sketch_unsubmitted``.
        """
        self._store(
            SketchFinished(
                memory_id, bytes(png), float(timestamp), int(width), int(height), submitted=False
            )
        )
        self._event(
            timestamp,
            "participant",
            "sketch_unsubmitted",
            self._json(
                {
                    "memory": memory_id,
                    "points": int(points),
                    "width": int(width),
                    "height": int(height),
                    "reason": reason,
                }
            ),
        )

    def add_sketch_points(self, points: np.ndarray) -> None:
        """Points drawn so far (``STROKE_DTYPE`` rows with their own LSL timestamps)."""
        run = self._run
        if run is None or run.step.memory is None or len(points) == 0:
            return
        run.sketch_points += len(points)
        self._store(SketchPoints(run.step.memory.id, np.asarray(points)))

    def finish_sketch(self, png: bytes, timestamp: float, *, width: int, height: int) -> None:
        """The participant submitted the sketch (final image as PNG bytes)."""
        self._advance(timestamp)
        run = self._run
        if run is None or run.step.memory is None:
            log.warning("sketch submitted outside a memory phase: ignored")
            return
        mid = run.step.memory.id
        run.sketch_submitted = True
        self._store(SketchFinished(mid, bytes(png), timestamp, int(width), int(height)))
        self._event(
            timestamp,
            "participant",
            "sketch_submitted",
            self._json(
                {"memory": mid, "points": run.sketch_points, "width": width, "height": height}
            ),
        )
        if isinstance(run.step.phase, SketchPhase):
            self._request_end(timestamp, "submit")

    def add_melody_audio(
        self,
        audio: np.ndarray,
        *,
        sample_rate: int,
        origin: str,
        start_timestamp: float | None = None,
    ) -> None:
        """Melody audio as it arrives (microphone chunks) or all at once (a chosen file).

        ``origin`` is ``microphone`` or ``file:<name>`` (the file's name only, no folders).
        """
        run = self._run
        if run is None or run.step.memory is None:
            return
        audio = np.asarray(audio, dtype=np.float32)
        run.melody_samples += len(audio)
        run.melody_rate = int(sample_rate)
        self._store(
            MelodyAudio(run.step.memory.id, audio, int(sample_rate), origin, start_timestamp)
        )

    def finish_melody(self, timestamp: float, *, origin: str) -> None:
        """The participant is done with the melody phase."""
        self._advance(timestamp)
        run = self._run
        if run is None or run.step.memory is None:
            return
        seconds = run.melody_samples / run.melody_rate if run.melody_rate else 0.0
        self._event(
            timestamp,
            "participant",
            "melody_submitted",
            self._json(
                {"memory": run.step.memory.id, "origin": origin, "seconds": round(seconds, 3)}
            ),
        )
        if isinstance(run.step.phase, MelodyPhase):
            self._request_end(timestamp, "submit")

    def clip_started(
        self, timestamp: float, *, output_latency: float | None = None, offset: float = 0.0
    ) -> None:
        """The display started playing the current listening step's clip.

        ``timestamp`` is when the first sample reaches the loudspeaker: the LSL time of the
        player's start call plus ``output_latency`` (the latency the audio device reports,
        also stored). Ignored outside a listening step or if the clip already started.
        """
        self._advance(timestamp)
        run = self._run
        if run is None or run.step.clip is None or run.step.phase.kind != "listening":
            return
        if run.clip_start is not None:
            return
        clip = run.step.clip
        run.clip_start = float(timestamp)
        value = {
            "clip": clip.id,
            "block": run.step.block,
            "file": clip.file.name,
            "sha256": clip.sha256,
            "title": clip.title,
            "offset": float(offset),
            "output_latency": None if output_latency is None else float(output_latency),
        }
        self._event(timestamp, "stimulus", "clip_start", self._json(value))

    def video_started(
        self, timestamp: float, *, output_latency: float | None = None, offset: float = 0.0
    ) -> None:
        """The display started playing the current preference video (``timestamp``: when its
        first sound reaches the loudspeaker, as :meth:`clip_started`). Recorded as
        ``stimulus/video_start`` with what the video shows (the participant never sees it)."""
        self._advance(timestamp)
        run = self._run
        if run is None or not isinstance(run.step.phase, PreferenceVideo):
            return
        if run.video_start is not None:
            return
        run.video_start = float(timestamp)
        # The whole video is watched (and rated while watching): the step lasts the video's
        # length from when its sound began, not from when the step began.
        run.late_start = max(0.0, self._elapsed(run, float(timestamp)))
        v = run.step.video
        value = {
            "memory": run.step.memory_id,
            "video": run.step.label,
            "shows": v.shows,
            "file": v.video.name,
            "sha256": v.sha256,
            "seconds": v.seconds,
            "block": run.step.block,
            "offset": float(offset),
            "output_latency": None if output_latency is None else float(output_latency),
        }
        self._event(timestamp, "stimulus", "video_start", self._json(value))

    def video_failed(self, timestamp: float, error: str) -> None:
        """The current preference video could not be played: recorded, the protocol goes on
        (the analysis leaves this memory's judgement out)."""
        run = self._run
        if run is None or not isinstance(run.step.phase, PreferenceVideo):
            return
        value = {"memory": run.step.memory_id, "video": run.step.label, "error": str(error)}
        self._event(timestamp, "stimulus", "video_error", self._json(value))

    def rate_video(self, scale: str, value: int, timestamp: float) -> None:
        """A rating of the video just watched on one of the phase's ``scales``; the step ends
        when every scale has one (a scale rated again keeps the latest; both are recorded)."""
        self._advance(timestamp)
        run = self._run
        if run is None or not isinstance(run.step.phase, PreferenceRating):
            return
        scales = {s.id: s for s in run.step.phase.scales}
        if scale not in scales:
            raise ValueError(f"no scale {scale!r} here; scales: {', '.join(scales)}")
        sc = scales[scale]
        if not sc.min <= int(value) <= sc.max:
            raise ValueError(f"scale {scale!r} goes from {sc.min} to {sc.max}, not {value}")
        run.ratings[scale] = int(value)
        payload = {
            "memory": run.step.memory_id,
            "video": run.step.label,
            "scale": scale,
            "value": int(value),
        }
        self._event(timestamp, "participant", "preference_rating", self._json(payload))
        if all(s in run.ratings for s in scales):
            self._request_end(timestamp, "submit")

    def choose_video(self, label: str, timestamp: float) -> None:
        """The participant's answer in a preference choice: ``A`` or ``B``."""
        self._advance(timestamp)
        run = self._run
        if run is None or not isinstance(run.step.phase, PreferenceChoice):
            return
        label = str(label).upper()
        if label not in ("A", "B"):
            raise ValueError(f"the choice is A or B, not {label!r}")
        payload = {"memory": run.step.memory_id, "chose": label, "block": run.step.block}
        self._event(timestamp, "participant", "preference_choice", self._json(payload))
        self._request_end(timestamp, "submit")

    def clip_failed(self, timestamp: float, error: str) -> None:
        """The current listening step's clip could not be played (no sound device, unreadable
        file): recorded, so the analysis leaves this clip out; the protocol goes on."""
        run = self._run
        if run is None or run.step.clip is None or run.step.phase.kind != "listening":
            return
        value = {"clip": run.step.clip.id, "block": run.step.block, "error": str(error)}
        self._event(timestamp, "stimulus", "clip_error", self._json(value))

    def rate_sam(self, scale: str, value: int, timestamp: float) -> None:
        """A Self-Assessment Manikin rating (``valence`` or ``arousal``, 1-9).

        The ``sam`` phase ends when every scale it lists has a rating; a scale rated again
        keeps the latest value (both are recorded).
        """
        if scale not in ("valence", "arousal"):
            raise ValueError(f"SAM scale must be 'valence' or 'arousal', not {scale!r}")
        if not 1 <= int(value) <= 9:
            raise ValueError(f"SAM ratings are 1-9, not {value}")
        self._advance(timestamp)
        self._event(timestamp, "participant", f"sam_{scale}", str(int(value)))
        run = self._run
        if run is not None and isinstance(run.step.phase, SamPhase):
            run.sam[scale] = int(value)
            if all(s in run.sam for s in run.step.phase.scales):
                self._request_end(timestamp, "submit")

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _json(obj: dict[str, Any]) -> str:
        return json.dumps(obj, separators=(",", ":"))

    def _capture(self, step: Step | None) -> dict[str, bool]:
        """Which devices record during ``step`` (None: before the start or after the end,
        when only devices without a phase list record)."""
        cfg = self.protocol.capture
        out = {}
        for device in ("camera", "microphone"):
            if getattr(cfg, device) is None:
                out[device] = True
            else:
                out[device] = step is not None and cfg.records(
                    device, step.kind, step.phase.id, step.block
                )
        return out

    def _capture_event(self, t: float, step: Step | None) -> None:
        state = self._capture(step)
        if state != self._capture_state:
            for device, on in state.items():
                if self._capture_state.get(device) != on:
                    self._capture_since[device] = float(t)
            self._capture_state = state
            self._event(t, "protocol", "capture", self._json(state))

    def _valence_config(self, phase: SimplePhase):
        if isinstance(phase, PreferenceVideo) and phase.rate_valence:
            # While watching, valence is rated continuously with the protocol's keys.
            return self.protocol.valence.model_copy(update={"mode": "continuous"})
        if not isinstance(phase, RecallPhase):
            return None
        return phase.valence or self.protocol.valence

    def _event(self, t: float, source: str, label: str, value: str = "") -> None:
        ev = Event(float(t), source, label, value)
        self.events.append(ev)
        if self._emit_cb is not None:
            self._emit_cb(ev)

    def _store(self, record: MemoryRecord) -> None:
        if self._store_cb is not None:
            self._store_cb(record)

    def _changed(self) -> None:
        if self._change_cb is not None:
            self._change_cb(self.display())

    def _key_event(
        self,
        t: float,
        label: str,
        key: str,
        valence: str | None,
        phase: str | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        value = {"key": key, "valence": valence, "phase": phase, **(extra or {})}
        self._event(t, "keyboard", label, self._json(value))

    def _elapsed(self, run: _Run, t: float) -> float:
        paused = run.paused_total
        if self._paused_at is not None:
            paused += max(0.0, t - self._paused_at)
        return t - run.start - paused

    def _due(self, run: _Run) -> tuple[float, str] | None:
        """When and why the current phase ends, given what is known (``None``: not yet)."""
        phase = run.step.phase
        base = run.start + run.paused_total
        candidates: list[tuple[float, str]] = []
        if phase.end == "time":
            candidates.append((base + phase.duration + run.late_start, "time"))
        if phase.max_duration is not None:
            candidates.append((base + phase.max_duration, "timeout"))
        if run.end_request is not None:
            t, reason = run.end_request
            candidates.append((max(t, base + phase.min_duration), reason))
        return min(candidates) if candidates else None

    def _advance(self, now: float) -> None:
        while self._state == "running" and self._run is not None:
            due = self._due(self._run)
            if due is None or due[0] > now:
                break
            self._end_and_next(due[0], due[1])
            self._changed()
        if self._run is not None and self._run.reporter is not None and self._state != "ready":
            self._run.reporter.advance(now)
            self._flush_valence(self._run)
        self._now = max(self._now, now)

    def _request_end(self, t: float, reason: str) -> None:
        run = self._run
        if run is None or run.end_request is not None:
            return
        run.end_request = (t, reason)
        self._advance(t)

    def _enter(self, index: int, t: float) -> None:
        self._index = index
        if index >= len(self.steps):
            self._run = None
            self._state = "finished"
            self._event(t, "protocol", "session_end", self._json({"reason": "completed"}))
            self._capture_event(t, None)
            return
        step = self.steps[index]
        run = _Run(step, t)
        mem = step.memory
        if mem is not None and mem.id not in self._memories_started:
            self._memories_started.add(mem.id)
            self._store(MemoryStarted(mem.id, mem.cue, int(step.memory_index), t))
        vcfg = self._valence_config(step.phase)
        if vcfg is not None:
            run.reporter = ValenceReporter(vcfg, t)
        self._run = run
        self._event(t, "protocol", "phase_start", self._json(step.marker()))
        self._capture_event(t, step)
        if isinstance(step.phase, NarrationPhase) and not step.phase.start_key:
            self._narration_start(run, t, None)

    def _narration_start(self, run: _Run, t: float, key: str | None) -> None:
        run.narration_start = t
        run.narration_paused = run.paused_total
        memory = run.step.memory.id if run.step.memory is not None else None
        self._event(t, "participant", "narration_start", self._json({"memory": memory, "key": key}))

    def _leave(self, t: float, reason: str) -> None:
        run = self._run
        if run is None:
            return
        for k, held in list(self._held.items()):
            # A key held across the boundary is released here: the next phase never sees it
            # (no valence carried over, no characters typed into a text box).
            del self._held[k]
            self._ignored[k] = t
            self._release(k, held, t, released_by="phase_end")
        if run.reporter is not None:
            run.reporter.advance(t)
            self._flush_valence(run)
        if (
            isinstance(run.step.phase, DescriptionPhase)
            and not run.description_submitted
            and run.draft is not None
            and run.step.memory is not None
        ):
            if run.draft != run.draft_stored:
                self._store_draft(run)
            self._event(
                t,
                "participant",
                "description_unsubmitted",
                self._json(
                    {"memory": run.step.memory.id, "chars": len(run.draft[0]), "reason": reason}
                ),
            )
        if run.clip_start is not None and run.step.clip is not None:
            played = {
                "clip": run.step.clip.id,
                "block": run.step.block,
                "played": round(max(0.0, t - run.clip_start - run.paused_total), 6),
            }
            self._event(t, "stimulus", "clip_end", self._json(played))
        if run.video_start is not None and run.step.video is not None:
            played = {
                "memory": run.step.memory_id,
                "video": run.step.label,
                "played": round(max(0.0, t - run.video_start - run.paused_total), 6),
            }
            self._event(t, "stimulus", "video_end", self._json(played))
        if run.narration_start is not None:
            spoken = {
                "memory": run.step.memory.id if run.step.memory is not None else None,
                "reason": reason,
                "seconds": round(
                    max(0.0, t - run.narration_start - run.paused_total + run.narration_paused), 6
                ),
            }
            self._event(t, "participant", "narration_end", self._json(spoken))
        marker = {**run.step.marker(), "reason": reason}
        self._event(t, "protocol", "phase_end", self._json(marker))
        if isinstance(run.step.phase, BaselinePhase):
            pass  # the eyes condition is in the protocol; nothing else to record
        self._run = None

    def _end_and_next(self, t: float, reason: str) -> None:
        self._leave(t, reason)
        self._enter(self._index + 1, t)

    def _flush_valence(self, run: _Run) -> None:
        rep = run.reporter
        if rep is None:
            return
        for ch in rep.pop_changes():
            self._event(ch.timestamp, "participant", "valence_state", ch.valence)
        values, ts = rep.pop_samples()
        if len(ts) and self._samples_cb is not None:
            self._samples_cb(values, ts)
