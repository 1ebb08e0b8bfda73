"""Record live sources into a session file on a background thread.

The recorder drains each source's ring buffer into the :class:`SessionWriter` every
``poll_interval`` seconds, along with the sources' events and any events other threads add
(key presses, protocol markers). The GUI thread only ever calls :meth:`Recorder.add_event`,
which returns at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from data_schema.errors import RecallLabError, SessionFileError
from data_schema.types import Event
from data_schema.writer import SessionWriter

if TYPE_CHECKING:
    from drivers.base import Source

log = logging.getLogger(__name__)


@dataclass
class RecorderStatus:
    samples_written: dict[str, int]
    samples_lost: dict[str, int]
    events_written: int
    file_bytes: int
    error: str = ""


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
    """

    def __init__(
        self,
        writer: SessionWriter,
        sources: Mapping[str, Source],
        *,
        poll_interval: float = 0.1,
        event_sinks: list[Callable[[Event], None]] | None = None,
    ) -> None:
        self.writer = writer
        self.sources = dict(sources)
        self.poll_interval = poll_interval
        self.event_sinks = list(event_sinks or [])
        self._pos = dict.fromkeys(self.sources, 0)
        self._evpos = dict.fromkeys(self.sources, 0)
        self._written = dict.fromkeys(self.sources, 0)
        self._lost = dict.fromkeys(self.sources, 0)
        self._n_events = 0
        self._pending: list[Event] = []
        self._pending_lock = threading.Lock()
        self._stop = threading.Event()
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
            src.start()
            self._pos[name] = src.buffer.count if from_now else 0
            self._evpos[name] = len(src.events) if from_now else 0
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()

    def add_event(self, event: Event) -> None:
        """Queue an event for the file (thread-safe, returns at once)."""
        with self._pending_lock:
            self._pending.append(event)

    def _drain(self) -> None:
        for name, src in self.sources.items():
            buf = src.buffer
            if buf is None:
                continue
            data, ts, self._pos[name], lost = buf.read_since(self._pos[name])
            if lost:
                self._lost[name] += lost
                self._queue_lost(name, lost, ts)
            if len(ts):
                self.writer.append(name, data, ts)
                self._written[name] += len(ts)
            evs, self._evpos[name] = src.events.read_since(self._evpos[name])
            if evs:
                with self._pending_lock:
                    self._pending.extend(evs)
        with self._pending_lock:
            events, self._pending = self._pending, []
        if events:
            self.writer.add_events(events)
            self._n_events += len(events)
            for sink in self.event_sinks:
                for e in events:
                    try:
                        sink(e)
                    except Exception as exc:
                        log.warning("event sink failed: %s", exc)
        self.writer.maybe_flush()

    def _queue_lost(self, name: str, lost: int, ts) -> None:
        t = float(ts[0]) if len(ts) else 0.0
        with self._pending_lock:
            self._pending.append(Event(t, "recorder", "samples_lost", f"{name}:{lost}"))

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_interval):
                self._drain()
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
        try:
            size = self.writer.path.stat().st_size
        except OSError:
            size = 0
        return RecorderStatus(
            dict(self._written), dict(self._lost), self._n_events, size, str(self.error or "")
        )

    def stop(self, timeout: float = 10.0, *, stop_sources: bool = True) -> None:
        """Stop sources, write what is left, and close the file properly.

        If the recorder thread is still stuck in a write after ``timeout`` seconds (a hung
        network disk), the file is left as a crash would leave it (complete up to the last
        flush) and :attr:`error` says so, rather than blocking the caller for ever.

        With ``stop_sources=False`` the sources keep streaming (the console's scope goes on
        showing the signal between recordings).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        if stop_sources:
            for src in self.sources.values():
                src.stop()
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
        self.writer.close()
