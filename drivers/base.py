"""The source interface, its ring buffer and event log.

A :class:`Source` describes its stream (:class:`data_schema.StreamInfo`) and runs one
background thread that pulls chunks from the device into a preallocated :class:`RingBuffer`.
Readers (the recorder, the scope) keep their own read position and take copies under a short
lock; nothing is shifted when data arrives, and a reader that falls behind by more than the
buffer's capacity learns exactly how many samples it missed.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from data_schema.errors import RecallLabError, SourceError
from data_schema.types import Event, StreamInfo

log = logging.getLogger(__name__)


class RingBuffer:
    """The last ``capacity`` samples of a stream, with a count of every sample ever written.

    Positions are absolute sample counts, so each reader keeps its own cursor.
    """

    def __init__(self, n_channels: int, capacity: int, dtype: np.dtype | type = np.float32):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        self._data = np.zeros((self.capacity, n_channels), dtype=dtype)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        self._count = 0
        self._lock = threading.Lock()

    @property
    def n_channels(self) -> int:
        return self._data.shape[1]

    @property
    def count(self) -> int:
        """Samples written since creation."""
        return self._count

    def write(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append ``data`` [n x channels] and ``timestamps`` [n]."""
        n = len(timestamps)
        if n == 0:
            return
        if data.shape != (n, self.n_channels):
            raise ValueError(f"chunk {data.shape} does not fit {self.n_channels} channels")
        cap = self.capacity
        with self._lock:
            skip = max(0, n - cap)  # a chunk longer than the buffer keeps its tail
            src, tsrc = data[skip:], timestamps[skip:]
            start = (self._count + skip) % cap
            first = min(cap - start, len(tsrc))
            self._data[start : start + first] = src[:first]
            self._ts[start : start + first] = tsrc[:first]
            rest = len(tsrc) - first
            if rest:
                self._data[:rest] = src[first:]
                self._ts[:rest] = tsrc[first:]
            self._count += n

    def _copy(self, begin: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        cap = self.capacity
        n = end - begin
        a = begin % cap
        if a + n <= cap:
            return self._data[a : a + n].copy(), self._ts[a : a + n].copy()
        k = cap - a
        return (
            np.concatenate([self._data[a:], self._data[: n - k]]),
            np.concatenate([self._ts[a:], self._ts[: n - k]]),
        )

    def read_since(self, position: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Samples written after ``position``.

        Returns ``(data, timestamps, new_position, n_lost)``; ``n_lost`` counts samples that
        were overwritten before this reader got to them.
        """
        with self._lock:
            end = self._count
            begin = max(position, end - self.capacity)
            lost = begin - position
            data, ts = self._copy(begin, end)
        return data, ts, end, lost

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``n`` samples (fewer if fewer were written)."""
        with self._lock:
            end = self._count
            begin = max(0, end - min(n, self.capacity))
            return self._copy(begin, end)


class EventLog:
    """An append-only, thread-safe list of events; readers keep their own index."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def read_since(self, position: int) -> tuple[list[Event], int]:
        with self._lock:
            return self._events[position:], len(self._events)

    def __len__(self) -> int:
        return len(self._events)


@dataclass
class SourceStatus:
    """What the console shows about a source."""

    state: str  # "idle", "running", "stalled", "finished", "failed", "stopped"
    samples: int
    effective_rate: float
    gaps: int
    error: str = ""


class Source(ABC):
    """A live stream of samples on the LSL clock, filled by a background thread.

    Subclasses implement :meth:`_connect` (return the stream description), :meth:`_pull` (return
    a chunk or ``None`` when nothing is waiting) and :meth:`_disconnect`; they report events
    with :meth:`emit`. Use as a context manager or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    buffer_seconds
        Ring buffer length; readers that fall further behind lose samples (and are told).
    stall_timeout
        Seconds without samples after which a ``gap_start`` event is emitted; a ``gap_end``
        follows when samples come back.
    """

    poll_interval = 0.005
    #: Least time between two pulls that delivered data. Each pull has a fixed cost (Python
    #: overhead, marker checks, clock fits); batching dense streams into fewer, larger chunks
    #: saves CPU at the price of that much extra display latency (timestamps are unaffected).
    min_pull_interval = 0.0

    def __init__(self, *, buffer_seconds: float = 30.0, stall_timeout: float = 1.5) -> None:
        self.buffer_seconds = buffer_seconds
        self.stall_timeout = stall_timeout
        self.info: StreamInfo | None = None
        self.buffer: RingBuffer | None = None
        self.events = EventLog()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: RecallLabError | None = None
        self._finished = False
        self._gaps = 0
        self._stalled_since: float | None = None
        self._first_wall: float | None = None
        self._last_data_wall = 0.0

    # ---------------------------------------------------------------- subclass API
    @abstractmethod
    def _connect(self) -> StreamInfo:
        """Open the device; return its description. Raise :class:`SourceError` on failure."""

    @abstractmethod
    def _pull(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(data [n x channels], lsl_timestamps [n])`` or ``None``."""

    def _disconnect(self) -> None:  # noqa: B027 - optional hook
        """Release the device."""

    @property
    def clock_mapping(self) -> dict[str, object]:
        """How timestamps were put on the LSL clock (stored with the stream)."""
        return {"clock": "lsl"}

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def finish(self) -> None:
        """Called by finite sources (replay) when everything was delivered."""
        self._finished = True

    # ---------------------------------------------------------------- user API
    def open(self) -> StreamInfo:
        """Connect and allocate the buffer (without starting the thread)."""
        if self.info is None:
            info = self._connect()
            rate = info.nominal_rate or 1000.0
            cap = int(max(1024, rate * self.buffer_seconds))
            self.buffer = RingBuffer(info.n_channels, cap)
            self.info = info
        return self.info

    def start(self) -> None:
        self.open()
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"source-{self.info.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        try:
            self._disconnect()
        except Exception as exc:
            log.warning("closing %s: %s", type(self).__name__, exc)

    def __enter__(self) -> Source:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def stalled(self) -> bool:
        """True from a ``gap_start`` until samples come back."""
        return self._stalled_since is not None

    @property
    def error(self) -> RecallLabError | None:
        return self._error

    def status(self) -> SourceStatus:
        count = self.buffer.count if self.buffer is not None else 0
        rate = 0.0
        if self._first_wall is not None and count > 1:
            span = self._last_data_wall - self._first_wall
            rate = count / span if span > 0 else 0.0
        if self._error is not None:
            state = "failed"
        elif self._finished:
            state = "finished"
        elif self._stalled_since is not None:
            state = "stalled"
        elif self.running:
            state = "running"
        else:
            state = "idle" if self.info is None else "stopped"
        return SourceStatus(state, count, rate, self._gaps, str(self._error or ""))

    # ---------------------------------------------------------------- thread
    def _run(self) -> None:
        from drivers.clock import local_clock

        # Irregular streams have no rate to miss, so silence there is not a gap.
        watch_stalls = bool(self.info.nominal_rate)
        period = 1.0 / self.info.nominal_rate if self.info.nominal_rate else 0.0
        # A stream that never delivers a first sample is stalled too, counted from the start.
        self._last_data_wall = time.monotonic()
        last_ts: float | None = None
        try:
            while not self._stop.is_set():
                chunk = self._pull()
                now = time.monotonic()
                if chunk is not None and len(chunk[1]):
                    data, ts = chunk
                    ts = np.asarray(ts, np.float64)
                    self.buffer.write(np.asarray(data, np.float32), ts)
                    if self._first_wall is None:
                        self._first_wall = now
                    self._last_data_wall = now
                    if self._stalled_since is not None:
                        self._end_gap(float(ts[0]))
                    last_ts = float(ts[-1])
                    if self.min_pull_interval:
                        self._stop.wait(self.min_pull_interval - (time.monotonic() - now))
                    continue
                if self._finished:
                    break
                if (
                    watch_stalls
                    and self._stalled_since is None
                    and now - self._last_data_wall > self.stall_timeout
                ):
                    self._start_gap(last_ts, period, now)
                self._stop.wait(self.poll_interval)
        except RecallLabError as exc:
            self._error = exc
        except Exception as exc:
            self._error = SourceError(f"{type(self).__name__} stopped: {exc}")
            log.exception("source thread failed")
        if self._error is not None:
            self.emit(Event(local_clock(), "recorder", "source_error", str(self._error)))

    def _start_gap(self, last_ts: float | None, period: float, now: float) -> None:
        """Mark a gap that began when the sample after the last one was due."""
        from drivers.clock import local_clock

        if last_ts is not None:
            began = last_ts + period
        else:  # nothing arrived yet: the gap began when the thread started
            began = local_clock() - (now - self._last_data_wall)
        self._stalled_since = began
        self._gaps += 1
        self.emit(Event(began, "recorder", "gap_start", self.info.name))
        log.warning("%s: no samples for %.1f s", self.info.name, self.stall_timeout)

    def _end_gap(self, first_ts: float) -> None:
        """Close the gap at the first new sample; ``duration`` is the time without samples."""
        gap = max(0.0, first_ts - self._stalled_since)
        self.emit(Event(first_ts, "recorder", "gap_end", self.info.name, gap))
        log.warning("%s: samples again after %.1f s", self.info.name, gap)
        self._stalled_since = None
