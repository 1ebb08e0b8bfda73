"""Record live sources into a session file on a background thread.

The recorder thread sleeps until there is something to do: an event from a source or from
another thread (key presses, protocol markers), which it hands at once to the event sinks and
the :class:`SessionWriter`, or new samples once a flush of the file is due (twice a second).
Samples go to the file straight from the sources' ring buffers, in one write per stream and
flush: the recorder holds its place in each buffer, so the source never overwrites what is
not yet written (it waits, and the device keeps the samples), and nothing is copied on the way.
A source that pulls as often as the file is flushed (``recall-lab record``) thus wakes the
recorder once per flush, right after its pull, like LabRecorder's one thread per stream.
The GUI thread only ever calls :meth:`Recorder.add_event`, which returns at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_schema.errors import RecallLabError, SessionFileError
from data_schema.types import Event
from data_schema.writer import SessionWriter

if TYPE_CHECKING:
    from drivers.base import Source
    from drivers.camera import CameraSource

log = logging.getLogger(__name__)


@dataclass
class RecorderStatus:
    samples_written: dict[str, int]
    samples_lost: dict[str, int]
    events_written: int
    file_bytes: int
    error: str = ""
    free_bytes: int = 0  # on the file's disk, as of the last flush
    frames_written: dict[str, int] = field(default_factory=dict)
    frames_dropped: dict[str, int] = field(default_factory=dict)  # by the camera's queue


class Recorder:
    """Drain ``sources`` into ``writer``.

    Parameters
    ----------
    writer
        An open :class:`SessionWriter`; the recorder closes it in :meth:`stop`.
    sources
        Stream name in the file (``eeg`` for the EEG) -> started or startable source.
    event_sinks
        Called with every event written (e.g. an LSL marker outlet's ``push``).
    poll_interval
        Longest sleep of the recorder thread when nothing wakes it (default: twice the
        writer's flush interval).
    frame_sources
        Video name in the file (``video``) -> camera (:class:`drivers.camera.CameraSource`).
        Its frames are written with the samples, once per flush.
    """

    #: New samples wake the recorder once this fraction of the flush interval has passed, so
    #: a source pulling once per flush interval is written right after each pull.
    flush_slack = 0.8

    def __init__(
        self,
        writer: SessionWriter,
        sources: Mapping[str, Source],
        *,
        poll_interval: float | None = None,
        event_sinks: list[Callable[[Event], None]] | None = None,
        frame_sources: Mapping[str, CameraSource] | None = None,
    ) -> None:
        self.writer = writer
        self.sources = dict(sources)
        self.frame_sources = dict(frame_sources or {})
        self._frames = dict.fromkeys(self.frame_sources, 0)
        self._frame_evpos = dict.fromkeys(self.frame_sources, 0)
        self.poll_interval = 2 * writer.flush_interval if poll_interval is None else poll_interval
        self.event_sinks = list(event_sinks or [])
        self._evpos = dict.fromkeys(self.sources, 0)
        self._written = dict.fromkeys(self.sources, 0)
        self._lost = dict.fromkeys(self.sources, 0)
        self._dropped = dict.fromkeys(self.sources, 0)
        self._n_events = 0
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._new_samples = False
        self._last_samples = 0.0  # monotonic time the last sample write began
        # File size and free disk space, measured by the recorder thread after its flushes:
        # status() is called from the GUI thread, which must never wait on the disk.
        self._file_bytes = 0
        self._free_bytes = 0
        self._thread: threading.Thread | None = None
        self.error: RecallLabError | None = None

    def start(self, *, from_now: bool = False) -> None:
        """Create the streams in the file, start the sources and the recorder thread.

        Parameters
        ----------
        from_now
            For sources that are already streaming (the console's scope): the file starts with
            the next sample and event, not with what the ring buffer still holds from before.
        """
        for name, src in self.sources.items():
            info = src.open()
            self.writer.add_stream(name, info, clock=src.clock_mapping)
            # The hold goes in before the source's thread runs, so nothing is overwritten.
            src.buffer.hold(self, src.buffer.count if from_now else 0)
            self._dropped[name] = src.buffer.dropped
            src.buffer.add_listener(self._on_samples)
            src.events.add_listener(self._wake.set)
            src.start()
            self._evpos[name] = len(src.events) if from_now else 0
        for name, cam in self.frame_sources.items():
            info = cam.open()
            self.writer.add_video_stream(name, info, clock=cam.clock_mapping)
            cam.events.add_listener(self._wake.set)
            cam.start()
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add_event(self, event: Event) -> None:
        """Queue an event for the file (thread-safe, returns at once)."""
        with self._pending_lock:
            self._pending.append(event)
        self._wake.set()

    def _on_samples(self) -> None:
        """A source published samples (its thread): wake up if a flush is (nearly) due."""
        self._new_samples = True
        if self._samples_due(self.flush_slack) or self._catching_up():
            self._wake.set()

    def _catching_up(self) -> bool:
        """A buffer is more than half full: write now rather than at the next flush time
        (after a slow disk, or for a burst bigger than the flush rhythm expects)."""
        return any(
            src.buffer is not None and src.buffer.room() < src.buffer.capacity // 2
            for src in self.sources.values()
        )

    def _samples_due(self, fraction: float = 1.0) -> bool:
        # Counted from when the last write began: a slow flush does not shift the rhythm.
        return time.monotonic() - self._last_samples >= fraction * self.writer.flush_interval

    def _drain(self, *, samples: bool = True) -> None:
        """Hand new events to the file and the sinks; with ``samples``, also the samples,
        followed by a flush (the samples reach the disk in the same step)."""
        if samples:
            self._drain_samples()
        for name, src in self.sources.items():
            evs, self._evpos[name] = src.events.read_since(self._evpos[name])
            if evs:
                with self._pending_lock:
                    self._pending.extend(evs)
        for name, cam in self.frame_sources.items():
            evs, self._frame_evpos[name] = cam.events.read_since(self._frame_evpos[name])
            if evs:
                with self._pending_lock:
                    self._pending.extend(evs)
        with self._pending_lock:
            events, self._pending = self._pending, []
        if events:
            self.writer.add_events(events, flush=not samples)
            self._n_events += len(events)
            for sink in self.event_sinks:
                for e in events:
                    try:
                        sink(e)
                    except Exception as exc:
                        log.warning("event sink failed: %s", exc)
        if samples:
            self.writer.flush()
            self._measure_disk()

    def _measure_disk(self) -> None:
        try:
            self._file_bytes = os.fstat(self.writer.fileno).st_size
            self._free_bytes = shutil.disk_usage(self.writer.path.parent).free
        except (OSError, ValueError):
            pass

    def _drain_samples(self) -> None:
        """Write what each source's buffer holds beyond our hold, then move the hold on."""
        for name, src in self.sources.items():
            buf = src.buffer
            if buf is None:
                continue
            end = buf.count
            parts = buf.view_since(self, end)
            for data, ts in parts:
                self.writer.append(name, data, ts, flush=False)
                self._written[name] += len(ts)
            buf.hold(self, end)
            dropped = buf.dropped - self._dropped[name]
            if dropped:  # a source that delivered more than fitted (never ours)
                self._dropped[name] = buf.dropped
                self._lost[name] += dropped
                self._queue_lost(name, dropped, parts[-1][1] if parts else [])

        for name, cam in self.frame_sources.items():
            frames, ts = cam.take()
            if frames:
                self.writer.append_frames(name, frames, ts, flush=False)
                self._frames[name] += len(frames)

    def _catch_up(self, timeout: float) -> None:
        """Before the sources stop: write what a source still had to hold back (samples the
        device acquired before the stop but a slow disk kept out of the buffer) and what its
        last pull (:meth:`Source.request_flush`) takes."""
        end = time.monotonic() + timeout
        try:
            while time.monotonic() < end and any(
                (s.held_back or s.flushing) and s.running for s in self.sources.values()
            ):
                self._drain_samples()
                time.sleep(0.01)
        except RecallLabError as exc:
            self.error = exc

    def _queue_lost(self, name: str, lost: int, ts) -> None:
        t = float(ts[0]) if len(ts) else 0.0
        with self._pending_lock:
            self._pending.append(Event(t, "recorder", "samples_lost", f"{name}:{lost}"))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._wake.wait(self.poll_interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                # Samples right after a pull that came (nearly) a flush interval after the last
                # flush, or when a flush is overdue; an event alone does not move the rhythm.
                due = (
                    self._samples_due()
                    or (self._new_samples and self._samples_due(self.flush_slack))
                    or self._catching_up()
                )
                if due:
                    self._new_samples = False
                    self._last_samples = time.monotonic()
                self._drain(samples=due)
        except RecallLabError as exc:
            self.error = exc
            log.info("recording stopped: %s", exc)
        except Exception as exc:
            # Anything else is a bug, but the recording must still end in a readable file and
            # the console must hear about it rather than watch a silent thread.
            log.exception("recorder thread failed")
            self.error = SessionFileError(
                f"recording into {self.writer.path} stopped: {type(exc).__name__}: {exc}"
            )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def status(self) -> RecorderStatus:
        """Counts and sizes as of the last flush; never touches the disk (GUI-thread safe)."""
        return RecorderStatus(
            dict(self._written),
            dict(self._lost),
            self._n_events,
            self._file_bytes,
            str(self.error or ""),
            self._free_bytes,
            dict(self._frames),
            {name: cam.dropped for name, cam in self.frame_sources.items()},
        )

    def stop(self, timeout: float = 10.0, *, stop_sources: bool = True) -> None:
        """Stop sources, write what is left, and close the file properly.

        If the recorder thread is still stuck in a write after ``timeout`` seconds (a hung
        network disk), the file is left as a crash would leave it (complete up to the last
        flush) and :attr:`error` says so, rather than blocking the caller for ever.

        With ``stop_sources=False`` the sources keep streaming (the console's scope goes on
        showing the signal between recordings).

        The sources first take what their devices hold up to this moment (a source pulls only
        every so often), so the file ends where the recording stopped, not at the last pull;
        the cameras keep no frame captured after it.
        """
        from drivers.clock import local_clock

        stopped_at = local_clock()
        for src in self.sources.values():
            src.request_flush(stopped_at)
        for cam in self.frame_sources.values():
            cam.set_recording(False, at=stopped_at)  # no frame from after the stop
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if self.error is None and not (self._thread is not None and self._thread.is_alive()):
            self._catch_up(timeout)
        if stop_sources:
            for src in self.sources.values():
                src.stop()
        for cam in self.frame_sources.values():
            cam.stop()  # cameras stop with the recording: what they captured is written below
        if self._thread is not None and self._thread.is_alive():
            self.error = SessionFileError(
                f"writing {self.writer.path} did not finish within {timeout:g} s (disk not "
                "responding?); the file keeps everything up to its last flush"
            )
            log.error("%s", self.error)
            return
        if self.error is None:
            try:
                self._drain()
            except RecallLabError as exc:
                self.error = exc
        for cam in self.frame_sources.values():
            cam.events.remove_listener(self._wake.set)
        for src in self.sources.values():
            src.events.remove_listener(self._wake.set)
            if src.buffer is not None:
                src.buffer.remove_listener(self._on_samples)
                src.buffer.release(self)
        self.writer.close()
        try:
            self._file_bytes = self.writer.path.stat().st_size
        except OSError:
            pass
