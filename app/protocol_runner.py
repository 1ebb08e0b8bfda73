"""Drive the Qt-free protocol engine from Qt: a timer, the participant's inputs, the display.

The engine (:mod:`protocols.engine`) decides everything about phases; this module only feeds
it timestamped inputs from the participant window, ticks it on a 20 ms timer, and shows its
:class:`~protocols.engine.DisplayState`. It lives on the GUI thread because the engine is not
thread-safe; audio from the microphone thread reaches it through a queued Qt signal.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from PyQt6 import QtCore

from app.clip_player import ClipPlayer
from app.participant import ParticipantWindow
from app.session_controller import SessionController
from app.video_player import VideoPlayer
from app.widgets.melody import play_file
from data_schema.writer import STROKE_DTYPE
from drivers.clock import local_clock
from protocols.engine import DisplayState, ProtocolEngine
from protocols.model import Protocol, ValenceConfig
from protocols.reconstructions import Reconstruction
from protocols.valence import normalize_key

log = logging.getLogger(__name__)

TITLES = {
    "instructions": "Instructions",
    "baseline": "Rest",
    "cue": "Memory",
    "recall": "Recall",
    "description": "Describe the memory",
    "sketch": "Sketch the memory",
    "melody": "A melody for the memory",
    "music": "Listen",
    "listening": "Listen",
    "narration": "Tell the memory aloud",
    "preference_video": "Video",
    "preference_rating": "Your ratings",
    "preference_choice": "Which one?",
    "sam": "How do you feel?",
}


def phase_text(d: DisplayState) -> str:
    """The words the participant reads for ``d`` (instruction, cue, keys to use)."""
    parts = []
    if d.cue and d.kind in ("cue", "recall", "narration"):
        parts.append(f"<p style='font-size:34px'><b>{d.cue}</b></p>")
    if d.text:
        parts.append(f"<p>{d.text}</p>")
    if d.kind == "baseline":
        parts.insert(0, "<p style='font-size:80px'>+</p>")
    if d.narrating is False and d.continue_key:
        parts.append(
            f"<p style='color:#666'>Press <b>{d.continue_key}</b> when you begin to speak.</p>"
        )
    elif d.narrating and d.continue_key:
        parts.append(
            "<p style='color:#2a7'><b>Speaking</b></p>"
            f"<p style='color:#666'>Press <b>{d.continue_key}</b> when you have finished.</p>"
        )
    elif d.continue_key:
        parts.append(f"<p style='color:#666'>Press <b>{d.continue_key}</b> to continue.</p>")
    return "".join(parts)


class ProtocolRunner(QtCore.QObject):
    """Run ``protocol`` for one recording.

    Signals
    -------
    changed(DisplayState)
        The phase or the run state changed (the console shows it).
    finished(str)
        ``completed`` or ``aborted``.
    text_box(object)
        The participant's text box while a text phase shows it, else ``None``.
    """

    changed = QtCore.pyqtSignal(object)
    finished = QtCore.pyqtSignal(str)
    text_box = QtCore.pyqtSignal(object)

    def __init__(
        self,
        protocol: Protocol,
        controller: SessionController,
        participant: ParticipantWindow,
        *,
        base_dir: str | Path | None = None,
        melody_dir: str = "",
        reconstructions: Mapping[str, Reconstruction] | None = None,
        tick_ms: int = 20,
        horizon: Callable[[float], float] | None = None,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.protocol = protocol
        self.controller = controller
        self.participant = participant
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.melody_dir = melody_dir
        #: The time up to which the key source has delivered everything (a key release may
        #: still be held back to tell it from an auto-repeat); the engine never runs past it.
        self.horizon = horizon or (lambda now: now)
        self._sketch_points_n: dict[str, int] = {}
        self._sketch_done: set[str] = set()
        self.engine = ProtocolEngine(
            protocol,
            emit=controller.add_event,
            store=controller.store,
            valence_samples=(
                controller.valence_source.push if controller.valence_source is not None else None
            ),
            on_change=self._on_change,
            base_dir=base_dir,
            participant_id=controller.writer.participant_id if controller.writer else "",
            reconstructions=reconstructions,
        )
        self.clips = ClipPlayer(self)
        self.video = VideoPlayer(self)
        self.video.started.connect(self._video_started)
        self.video.failed.connect(self._video_failed)
        self.video.frame.connect(participant.preference.show_frame)
        self.clips.started.connect(self._clip_started)
        self.clips.failed.connect(self._clip_failed)
        self._last: DisplayState | None = None
        self.timer = QtCore.QTimer(self)
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(tick_ms)
        self.timer.timeout.connect(self.tick)
        p = participant
        p.description_submitted.connect(self._description)
        p.description_edited.connect(self._draft)
        p.sketch_points.connect(self._sketch_points)
        p.sketch_submitted.connect(self._sketch)
        p.sam_rated.connect(self._sam)
        p.melody.audio.connect(self._melody_audio)
        p.done.connect(self._melody_done)
        p.preference.rated.connect(self._video_rated)
        p.preference.chose.connect(self._video_chosen)

    # ------------------------------------------------------------------ experimenter
    def start(self) -> None:
        self.engine.start(local_clock())
        self._gate_capture(self.engine.display())
        self.timer.start()

    def pause(self, paused: bool) -> None:
        self.clips.pause(paused)
        self.video.pause(paused)
        if paused:
            self.engine.pause(local_clock())
        else:
            self.engine.resume(local_clock())

    def skip(self) -> None:
        self.engine.skip(local_clock())

    def abort(self) -> None:
        self.engine.abort(local_clock(), "experimenter")
        self._check_done()

    def close(self) -> None:
        """Stop feeding the engine and disconnect from the participant window."""
        self.timer.stop()
        self.clips.stop()
        self.video.stop()
        p = self.participant
        for sig, slot in (
            (p.description_submitted, self._description),
            (p.description_edited, self._draft),
            (p.sketch_points, self._sketch_points),
            (p.sketch_submitted, self._sketch),
            (p.sam_rated, self._sam),
            (p.melody.audio, self._melody_audio),
            (p.done, self._melody_done),
            (p.preference.rated, self._video_rated),
            (p.preference.chose, self._video_chosen),
        ):
            try:
                sig.disconnect(slot)
            except TypeError:
                pass

    # ------------------------------------------------------------------ participant
    def key(self, t: float, key: str, down: bool, auto_repeat: bool) -> None:
        """A key went down or up at ``t`` (LSL clock, from the key handler)."""
        if down:
            self.engine.key_down(key, t, auto_repeat=auto_repeat)
        else:
            self.engine.key_up(key, t)
        self.participant.set_valence(self.engine.display().valence if self._recall() else "")

    def _recall(self) -> bool:
        return self._last is not None and self._last.expects == "valence_keys"

    def _description(self, text: str, t: float) -> None:
        if not self.engine.submit_description(text, t):
            phase = self.engine.display().phase
            need = getattr(phase, "min_chars", 0)
            self.participant.title.setText(f"Please write at least {need} characters")

    def _draft(self, text: str, t: float) -> None:
        self.engine.draft_description(text, t)

    def _sketch_points(self, points: list) -> None:
        step = self.engine.current
        if step is not None and step.memory_id is not None:
            n = self._sketch_points_n.get(step.memory_id, 0)
            self._sketch_points_n[step.memory_id] = n + len(points)
        self.engine.add_sketch_points(np.array(points, dtype=STROKE_DTYPE))

    def _sketch(self, png: bytes, t: float, width: int, height: int) -> None:
        step = self.engine.current
        self.engine.finish_sketch(png, t, width=width, height=height)
        if step is not None and step.memory_id is not None:
            self._sketch_done.add(step.memory_id)

    def _sam(self, label: str, value: int, t: float) -> None:
        self.engine.rate_sam(label.removeprefix("sam_"), value, t)

    def _melody_audio(self, audio: object, rate: int, origin: str, start: float) -> None:
        self.engine.add_melody_audio(
            np.asarray(audio), sample_rate=rate, origin=origin, start_timestamp=start
        )

    def _clip_started(self, t: float, latency: object) -> None:
        self.engine.clip_started(t, output_latency=latency)  # type: ignore[arg-type]

    def _clip_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.engine.clip_failed(local_clock(), message)

    def _video_started(self, t: float, latency: object) -> None:
        self.engine.video_started(t, output_latency=latency)  # type: ignore[arg-type]

    def _video_failed(self, message: str) -> None:
        log.warning("%s", message)
        self.engine.video_failed(local_clock(), message)

    def _video_rated(self, scale: str, value: int, t: float) -> None:
        self.engine.rate_video(scale, value, t)

    def _video_chosen(self, label: str, t: float) -> None:
        self.engine.choose_video(label, t)

    def _melody_done(self, t: float) -> None:
        self.participant.melody.stop_recording()
        self.engine.finish_melody(t, origin=self.participant.melody.origin or "none")

    # ------------------------------------------------------------------ display
    def _gate_capture(self, d: DisplayState) -> None:
        """Camera and microphone store only in the phases the protocol's ``capture`` names."""
        c = self.controller
        for dev, key in ((c.camera, "camera"), (c.microphone, "microphone")):
            if dev is not None:
                # Switched at the phase boundary's time, not at this tick's.
                dev.set_recording(d.capture[key], at=d.capture_since.get(key))

    def tick(self) -> None:
        d = self.engine.tick(self.horizon(local_clock()))
        self._gate_capture(d)
        self.participant.set_remaining(d.remaining)
        if d.expects == "valence_keys":
            self.participant.set_valence(d.valence)
        self._check_done()

    def _check_done(self) -> None:
        if self.engine.done and self.timer.isActive():
            self.timer.stop()
            self.finished.emit("completed" if self.engine.state == "finished" else "aborted")

    def _keep_unsubmitted_sketch(self, last: DisplayState) -> None:
        """The sketch phase ``last`` ended without Submit: store the canvas as it was left."""
        mid = last.memory_id
        if mid is None or mid in self._sketch_done or not self._sketch_points_n.get(mid):
            return
        self._sketch_done.add(mid)
        canvas = self.participant.canvas
        canvas.flush()
        end = next(
            (e for e in reversed(self.engine.events) if e.label == "phase_end"),
            None,
        )
        reason = json.loads(end.value).get("reason", "") if end is not None else ""
        self.engine.keep_unsubmitted_sketch(
            mid,
            canvas.to_png(),
            end.timestamp if end is not None else local_clock(),
            width=canvas.width(),
            height=canvas.height(),
            points=self._sketch_points_n.get(mid, 0),
            reason=reason,
        )

    def _melody_folder(self, d: DisplayState) -> str:
        folder = getattr(d.phase, "melody_dir", None)
        if folder:
            path = Path(folder)
            if not path.is_absolute() and self.base_dir is not None:
                path = self.base_dir / path
            return str(path)
        return self.melody_dir

    def _on_change(self, d: DisplayState) -> None:
        last, self._last = self._last, d
        p = self.participant
        same_phase = (
            last is not None and last.step_index == d.step_index and last.phase_id == d.phase_id
        )
        if not same_phase and last is not None and last.kind == "sketch":
            self._keep_unsubmitted_sketch(last)  # before the canvas is cleared for what follows
        if not same_phase and last is not None and last.kind == "listening":
            self.clips.stop()
        if not same_phase and last is not None and last.kind == "preference_video":
            self.video.stop()
        if same_phase and d.state in ("running", "paused"):
            # Pause and resume keep the page (and what the participant typed or drew).
            title = TITLES.get(d.kind, d.kind)
            p.title.setText(f"{title} (paused)" if d.state == "paused" else title)
            if d.narrating != last.narrating:  # the participant began to speak
                p.text.setText(phase_text(d))
        elif d.state == "finished":
            p.show_phase("", "Thank you", "The session is complete.")
        elif d.state == "aborted":
            p.show_phase("", "Session ended", "Thank you. The session has ended.")
        elif d.kind:
            if d.kind == "melody" and p.kind != "melody":
                p.melody.origin = ""
                p.melody.max_seconds = float(getattr(d.phase, "record_seconds", 15.0))
                p.melody.start_dir = self._melody_folder(d)
            if d.kind == "listening" and d.clip is not None:
                self.clips.play(d.clip)
            if d.kind == "preference_video" and d.video is not None:
                self.video.play(d.video, d.video_label or "")
            if d.kind == "music" and d.music_path is not None:
                play_file(d.music_path, on_error=lambda msg: log.warning("%s", msg))
            title = TITLES.get(d.kind, d.kind)
            if d.video_label is not None and d.kind != "preference_choice":
                title = f"Video {d.video_label}"  # never what it shows
            p.show_phase(
                d.kind,
                title,
                phase_text(d) if d.kind not in ("description",) else d.text,
                remaining=d.remaining,
                valence_feedback=d.expects == "valence_keys",
            )
            if d.kind == "preference_rating":
                p.preference.show_ratings(d.text, d.phase.scales)
            elif d.kind == "preference_choice":
                p.preference.show_choice(d.text)
        if not same_phase:
            running = d.state in ("running", "paused")
            self.text_box.emit(p.description if running and d.kind == "description" else None)
        self.changed.emit(d)


def free_key_valence(key: str, config: ValenceConfig | None = None) -> str:
    """The valence a key means when no protocol runs (the default RYM keys 1 and 3)."""
    cfg = config or ValenceConfig()
    k = normalize_key(key)
    if k == normalize_key(cfg.positive_key):
        return "positive"
    if k == normalize_key(cfg.negative_key):
        return "negative"
    return "neutral"
