"""The live session, without Qt: one source, its recording, the marker outlet, the outbox.

:class:`SessionController` is what the console's buttons call. Every method returns quickly:
connecting a source starts its acquisition thread, recording starts the recorder thread, and
participant products (the protocol engine's memory records) go through a
:class:`protocols.storage.MemoryWriter`. The console polls
:meth:`SessionController.status` and :attr:`SessionController.log` on a timer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from data_schema.errors import RecallLabError, SourceError
from data_schema.recorder import Recorder
from data_schema.types import Event, StreamInfo
from data_schema.writer import SessionWriter
from drivers.base import EventLog, Source

if TYPE_CHECKING:
    from drivers.camera import CameraSource
    from drivers.microphone import MicrophoneSource
    from protocols.engine import MemoryRecord
    from protocols.storage import MemoryWriter
    from protocols.valence_source import ValenceSource

log = logging.getLogger(__name__)


@dataclass
class SessionStatus:
    """What the console's status bar shows."""

    source_state: str = "disconnected"
    source_label: str = ""
    rate: float = 0.0
    nominal_rate: float = 0.0
    samples: int = 0
    gaps: int = 0
    samples_lost: int = 0
    recording: bool = False
    file: str = ""
    elapsed: float = 0.0
    file_bytes: int = 0
    free_bytes: int = 0
    events_written: int = 0
    error: str = ""
    stalled_for: float = 0.0  # seconds without samples (the current gap)
    camera_on: bool = False  # a camera is recording and delivering (not ended, not failed)
    microphone_on: bool = False
    frames_written: int = 0


def open_capture(
    camera: str = "", microphone: str = ""
) -> tuple[CameraSource | None, MicrophoneSource | None]:
    """Open the camera and the microphone named (``""``: none); blocks, so call it off the GUI
    thread.

    A device that cannot be opened raises :class:`SourceError` with one line, after what was
    already opened is closed again (the session file does not exist yet, nothing is lost).
    """
    cam = mic = None
    try:
        if camera:
            from drivers.camera import parse_camera

            cam = parse_camera(camera)
            cam.open()
        if microphone:
            from drivers.microphone import parse_microphone

            mic = parse_microphone(microphone)
            mic.open()
    except BaseException:
        for dev in (cam, mic):
            if dev is not None:
                dev.stop()
        raise
    return cam, mic


class PreviewTap:
    """A camera as the recorder sees it, with its newest recorded frame for a live preview.

    The camera keeps a reference to the newest JPEG it queued for the file (no copy, no
    decoding), replaced at its frame rate; the console decodes it at its own pace, so the
    preview runs at the console's refresh rate, not at the recorder's (twice a second). Only
    frames that go into the file are shown. Everything else is the camera's own.
    """

    def __init__(self, camera: CameraSource) -> None:
        self.camera = camera

    @property
    def latest(self) -> bytes | None:
        return self.camera.latest

    @property
    def taken(self) -> int:
        """Frames recorded so far (the preview redraws when this changes)."""
        return self.camera.frames

    def __getattr__(self, name: str):
        return getattr(self.camera, name)


class SessionController:
    """Own the source, the recorder, the marker outlet and the memory writer.

    Parameters
    ----------
    source_factory
        Builds a source from a specification string (``drivers.spec.parse_source``).
    marker_outlet
        Publish every written event on an LSL marker outlet (``drivers.outlets``).
    """

    def __init__(
        self,
        *,
        source_factory: Callable[[str], Source] | None = None,
        marker_outlet: bool = True,
    ) -> None:
        if source_factory is None:
            from drivers.spec import parse_source

            source_factory = parse_source
        self._source_factory = source_factory
        self._want_outlet = marker_outlet
        self.source: Source | None = None
        self.source_spec = ""
        self.recorder: Recorder | None = None
        self.valence_source: ValenceSource | None = None  # continuous rating, when recording
        self.writer: SessionWriter | None = None
        self.camera: PreviewTap | None = None  # recording the participant's face, or None
        self.microphone: MicrophoneSource | None = None  # recording their voice, or None
        self.memory_writer: MemoryWriter | None = None
        self.outlet = None
        self.log = EventLog()  # everything the console's event log shows
        self._src_evpos = 0
        self._started = 0.0

    # ------------------------------------------------------------------ source
    @property
    def connected(self) -> bool:
        return self.source is not None

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    def connect(self, spec: str) -> StreamInfo:
        """Open ``spec`` and start acquiring; raises :class:`SourceError` with one line."""
        if self.recording:
            raise SourceError("stop the recording before changing the source")
        self.disconnect()
        source = self._source_factory(spec)
        info = source.open()
        source.start()
        self.source, self.source_spec = source, spec
        self._src_evpos = 0
        return info

    def disconnect(self) -> None:
        if self.recording:
            raise SourceError("stop the recording before disconnecting the source")
        if self.source is not None:
            src, self.source = self.source, None
            src.stop()

    # ------------------------------------------------------------------ recording
    def start_recording(
        self,
        path: str | Path,
        *,
        participant: str,
        notes: str = "",
        protocol: str = "",
        valence_rate: float | None = None,
        attrs: dict[str, object] | None = None,
        camera: CameraSource | None = None,
        microphone: MicrophoneSource | None = None,
    ) -> Path:
        """Create the session file and start writing the source and events into it.

        With ``valence_rate`` (a protocol with continuous valence rating) the rating cursor is
        recorded as the stream ``valence``; the engine feeds :attr:`valence_source`.
        ``camera`` and ``microphone`` (opened by :func:`open_capture`) are recorded as the
        video ``video`` and the stream ``audio``, and stopped with the recording; if this
        raises, they are still the caller's to stop (stopping a device may block: the console
        does it off the GUI thread).
        """
        if self.source is None:
            raise SourceError("connect a source before recording")
        if self.recording:
            raise RecallLabError("already recording")
        writer = SessionWriter(
            path, participant_id=participant, protocol=protocol, notes=notes, attrs=attrs
        )
        sinks = [self._to_log]
        if self._want_outlet:
            from drivers.outlets import MarkerOutlet

            self.outlet = MarkerOutlet(f"recall-lab-markers-{writer.session_id}")
            sinks.append(self.outlet.push_event)
        sources: dict[str, Source] = {"eeg": self.source}
        self.valence_source = None
        if valence_rate:
            from protocols.valence_source import ValenceSource

            self.valence_source = ValenceSource(valence_rate)
            sources["valence"] = self.valence_source
        if microphone is not None:
            sources[microphone.name] = microphone
        tap = PreviewTap(camera) if camera is not None else None
        cameras = {camera.name: tap} if tap is not None else {}
        recorder = Recorder(writer, sources, event_sinks=sinks, frame_sources=cameras)
        recorder.start(from_now=True)  # the file starts now, not with the scope's buffer
        self.writer, self.recorder = writer, recorder
        self.camera, self.microphone = tap, microphone
        from protocols.storage import MemoryWriter

        self.memory_writer = MemoryWriter(writer)
        self._started = time.monotonic()
        return writer.path

    def stop_recording(self) -> Path | None:
        """Write what is queued, close the file properly and return its path (blocks)."""
        finish = self.begin_stop()
        return finish() if finish is not None else None

    def begin_stop(self) -> Callable[[], Path] | None:
        """Detach the recording now; return the function that finishes it.

        After this call :attr:`recording` is false. The returned function writes what is still
        queued (participant content first), closes the file properly and returns its path,
        raising :class:`RecallLabError` if anything failed. It may block on the disk, so the
        console runs it off the GUI thread.
        """
        if self.recorder is None:
            return None
        recorder, self.recorder = self.recorder, None
        memory_writer, self.memory_writer = self.memory_writer, None
        valence, self.valence_source = self.valence_source, None
        outlet, self.outlet = self.outlet, None
        microphone, self.microphone = self.microphone, None
        self.camera = None  # the recorder stops cameras with the recording
        self.writer = None

        def finish() -> Path:
            if memory_writer is not None:
                memory_writer.close()  # everything the participant produced, before closing
            recorder.stop(stop_sources=False)  # the scope keeps showing the signal
            if valence is not None:
                valence.stop()
            if microphone is not None:
                microphone.stop()  # the EEG goes on for the scope; the microphone does not
            if outlet is not None:
                outlet.close()  # lingers while LSL consumers take the last markers
            if recorder.error is not None:
                raise recorder.error
            if memory_writer is not None and memory_writer.error is not None:
                raise memory_writer.error
            return recorder.writer.path

        return finish

    def close(self) -> None:
        """Stop everything (used when the console closes after the user agreed)."""
        try:
            self.stop_recording()
        finally:
            self.disconnect()

    # ------------------------------------------------------------------ events
    def _to_log(self, event: Event) -> None:
        self.log.append(event)

    def add_event(self, event: Event) -> None:
        """Record ``event`` (thread-safe, returns at once); shown in the log either way."""
        if self.recorder is not None:
            self.recorder.add_event(event)  # the recorder's sink appends it to the log
        else:
            self.log.append(event)

    def key_event(
        self, timestamp: float, key: str, valence: str, *, down: bool, repeats: int = 0
    ) -> Event:
        """A valence key went down or up at ``timestamp`` (LSL clock of the event itself).

        With no protocol running; ``repeats`` (auto-repeats during the hold) goes with the up.
        """
        payload: dict[str, object] = {"key": key, "valence": valence, "phase": None}
        if not down:
            payload["repeats"] = int(repeats)
        value = json.dumps(payload)
        event = Event(timestamp, "keyboard", "key_down" if down else "key_up", value)
        self.add_event(event)
        return event

    def poll_source_events(self) -> None:
        """Copy source events (gaps, errors) to the log while not recording."""
        if self.source is None or self.recording:
            return
        evs, self._src_evpos = self.source.events.read_since(self._src_evpos)
        for e in evs:
            self.log.append(e)

    # ------------------------------------------------------------------ participant products
    def store(self, record: MemoryRecord) -> None:
        """Queue a protocol engine's memory record for the file (returns at once)."""
        if self.memory_writer is None:
            log.info("not recording: %s not stored", type(record).__name__)
            return
        self.memory_writer.put(record)

    # ------------------------------------------------------------------ status
    def status(self) -> SessionStatus:
        st = SessionStatus()
        src = self.source
        if src is not None:
            s = src.status()
            st.source_state, st.rate, st.samples, st.gaps = (
                s.state,
                s.effective_rate,
                s.samples,
                s.gaps,
            )
            st.error = s.error
            st.stalled_for = src.stalled_for if s.state == "stalled" else 0.0
            if src.info is not None:
                st.source_label = src.info.source or self.source_spec
                st.nominal_rate = src.info.nominal_rate
        rec = self.recorder
        if rec is not None:
            r = rec.status()
            st.recording = True
            st.file = str(rec.writer.path)
            st.elapsed = time.monotonic() - self._started
            st.file_bytes = r.file_bytes
            st.samples_lost = sum(r.samples_lost.values())
            st.events_written = r.events_written
            mw = self.memory_writer
            st.error = r.error or st.error or str(mw.error if mw and mw.error else "")
            st.free_bytes = r.free_bytes
            st.frames_written = sum(r.frames_written.values())
            cam, mic = self.camera, self.microphone
            # on = stored now: not ended or failed, and not paused by the protocol's capture
            st.camera_on = (
                cam is not None and cam.error is None and not cam.finished and cam.recording
            )
            st.microphone_on = mic is not None and mic.error is None and mic.recording
        return st
