"""The source interface.

A :class:`Source` describes its stream (:class:`data_schema.StreamInfo`) and runs one
background thread that pulls chunks from the device into a preallocated
:class:`~drivers.ring_buffer.RingBuffer`. Readers (the recorder, the scope) keep their own
read position; nothing is shifted when data arrives. A lossy reader that falls behind by more
than the buffer learns exactly how many samples it missed; the recorder holds its position, and
the source then pulls no more than fits, leaving the rest in the device's (or liblsl's) own
buffer until the disk has caught up.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass

import numpy as np

from data_schema.errors import RecallLabError, SourceError
from data_schema.types import Event, StreamInfo
from drivers.ring_buffer import EventLog, RingBuffer

__all__ = ["EventLog", "RingBuffer", "Source", "SourceStatus"]

log = logging.getLogger(__name__)


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
    a chunk of at most ``max_samples`` or ``None`` when nothing is waiting) and
    :meth:`_disconnect`; they report events with :meth:`emit`. A source that can have the
    device write straight into the ring buffer overrides :meth:`_pull_into` instead. Use as a
    context manager or call :meth:`start` and :meth:`stop`.

    Parameters
    ----------
    buffer_seconds
        Ring buffer length, at most :attr:`max_buffer_bytes` of memory (and at least 1024
        samples). A lossy reader (the scope) that falls further behind loses samples and is
        told; the recorder never does: the source waits for it instead.
    stall_timeout
        Seconds without samples after which a ``gap_start`` event is emitted; a ``gap_end``
        follows when samples come back.
    pull_interval
        Least seconds between two pulls that delivered data (``None``: the source's own
        default). Each pull has a fixed cost, so a recorder without a live display takes dense
        streams in fewer, larger chunks; timestamps are unaffected, only how soon readers see
        the samples.
    """

    poll_interval = 0.005
    #: Default least time between two pulls that delivered data (see ``pull_interval``).
    default_pull_interval = 0.0
    #: Most memory one ring buffer takes: 4 MiB is 2 s of 256 channels at 2 kHz, minutes of a
    #: consumer headset. The recorder drains it twice a second and holds what it has not
    #: written, so a small buffer loses nothing; it only bounds what the scope can catch up on.
    max_buffer_bytes = 4 * 2**20
    #: Most memory the source may take, only while the recorder is behind (a slow disk), to
    #: keep samples that neither the ring buffer nor the device's own buffer could hold. 0:
    #: the source just waits and the device keeps them (a replay, which reads a file, can).
    max_spill_bytes = 0
    #: ... and at most this many seconds of the stream.
    max_spill_seconds = 360.0
    #: A flush (:meth:`request_flush`) stops waiting for the samples up to its time once the
    #: device has delivered nothing for this many seconds (a stream that ended just before).
    flush_quiet = 0.2

    def __init__(
        self,
        *,
        buffer_seconds: float = 30.0,
        stall_timeout: float = 1.5,
        pull_interval: float | None = None,
    ) -> None:
        self.buffer_seconds = buffer_seconds
        self.stall_timeout = stall_timeout
        if pull_interval is not None and not 0 <= float(pull_interval) <= 5:
            raise SourceError(
                f"pull_interval={pull_interval!r}: give seconds between 0 and 5 (e.g. 0.1)"
            )
        self.pull_interval = (
            self.default_pull_interval if pull_interval is None else float(pull_interval)
        )
        self.info: StreamInfo | None = None
        self.buffer: RingBuffer | None = None
        self.events = EventLog()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop() and request_flush(): end a wait early
        # A flush asked for (request_flush): take what the device has up to this LSL time.
        self._flush_until: float | None = None
        self._flush_deadline = 0.0
        self._flushed = threading.Event()
        self._flushed.set()
        self._error: RecallLabError | None = None
        self._finished = False
        self._gaps = 0
        self._stalled_since: float | None = None
        self._first_wall: float | None = None
        self._last_data_wall = 0.0
        self._held_back = False
        # Chunks taken from the device while the ring buffer had no room (oldest first).
        self._spill: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self._spill_n = 0
        self._spill_cap = 0

    # ---------------------------------------------------------------- subclass API
    @abstractmethod
    def _connect(self) -> StreamInfo:
        """Open the device; return its description. Raise :class:`SourceError` on failure."""

    @abstractmethod
    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Return ``(data [n x channels], lsl_timestamps [n])``, ``n <= max_samples``, or None.

        Samples beyond ``max_samples`` would not fit beside what the recorder has not written
        yet: leave them with the device for the next pull.
        """

    def _pull_into(self, buffer: RingBuffer) -> tuple[int, float, float] | None:
        """Move what the device has into ``buffer``; ``(n, first_ts, last_ts)`` or ``None``.

        The default pulls a chunk (:meth:`_pull`) and writes it; sources whose device can fill
        the buffer's memory directly override this with :meth:`RingBuffer.claim`.
        """
        room = buffer.room()
        if room <= 0:
            return None
        chunk = self._pull(room)
        if chunk is None or not len(chunk[1]):
            return None
        data, ts = chunk
        ts = np.asarray(ts, np.float64)
        n = buffer.write(np.asarray(data, np.float32), ts)
        if n < len(ts):
            log.error("%s delivered %d samples for %d places", self.info.name, len(ts), room)
        if n == 0:
            return None
        return n, float(ts[0]), float(ts[n - 1])

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
            per_sample = 4 * max(info.n_channels, 1) + 8
            cap = min(rate * self.buffer_seconds, self.max_buffer_bytes // per_sample)
            self.buffer = RingBuffer(info.n_channels, int(max(1024, cap)))
            self._spill_cap = int(
                min(rate * self.max_spill_seconds, self.max_spill_bytes // per_sample)
            )
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

    def request_flush(self, until: float | None = None, timeout: float = 0.5) -> None:
        """Ask the source's thread to take what the device holds now, without waiting for its
        next pull (a recording that stops must not leave the last pull interval out).

        ``until``: an LSL time (the moment the recording stopped); a regular stream then also
        waits, at most ``timeout`` seconds, for the device to deliver the samples up to it (a
        sample acquired just before the stop may still be on its way). :attr:`flushing` is
        true until it is done; the source goes on afterwards as before.
        """
        if not self.running:
            return
        self._flush_deadline = time.monotonic() + max(0.0, timeout)
        self._flush_until = until
        self._flushed.clear()
        self._wake.set()
        if not self.running:  # the thread ended meanwhile: nobody would answer
            self._flushed.set()

    @property
    def flushing(self) -> bool:
        """True from :meth:`request_flush` until the thread took what the device had."""
        return not self._flushed.is_set()

    def _sleep(self, seconds: float) -> None:
        """Wait between pulls; a stop or a flush request ends the wait (a flush then polls
        the device every :attr:`poll_interval`)."""
        if self.flushing:
            seconds = min(seconds, self.poll_interval)
        if seconds > 0:
            self._wake.wait(seconds)
        self._wake.clear()

    def _flush_check(self, got: bool, last_ts: float | None, period: float) -> None:
        """After a pull (``got``: it delivered): a pending flush is done once the samples reach
        its time, or when the device has nothing more and no more is coming (an irregular or
        stalled stream, a quiet device, the flush's time is up)."""
        if self._flushed.is_set():
            return
        until = self._flush_until
        if until is not None and period and last_ts is not None and last_ts >= until - period:
            self._flushed.set()
        elif not got and (
            until is None
            or not period
            or self._stalled_since is not None
            or time.monotonic() - self._last_data_wall >= self.flush_quiet
        ):
            self._flushed.set()
        elif time.monotonic() >= self._flush_deadline:
            self._flushed.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
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
    def stalled_for(self) -> float:
        """Seconds since the current gap began (0 when samples are flowing)."""
        if self._stalled_since is None:
            return 0.0
        from drivers.clock import local_clock

        return max(0.0, local_clock() - self._stalled_since)

    @property
    def held_back(self) -> bool:
        """True while the buffer had no room for everything the device had (the recorder
        is behind, e.g. a slow disk): samples are waiting in the device's own buffer or in the
        memory the source took for them (:attr:`spilled`)."""
        return self._held_back or self._spill_n > 0

    @property
    def spilled(self) -> int:
        """Samples taken from the device that wait, outside the ring buffer, for room in it."""
        return self._spill_n

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
                if self._spill_n:
                    self._unspill()
                room = self.buffer.room()
                if self._spill_n or (room <= 0 and self._spill_cap):
                    # Behind a slow disk: keep taking the device's samples so its own buffer
                    # never overflows, and hand them on, in order, as room comes back.
                    got = self._pull_to_spill()
                    if got is not None:
                        if self._first_wall is None:
                            self._first_wall = time.monotonic()
                        last_ts = got[1]
                        if self._stalled_since is not None:
                            self._end_gap(got[0])
                    self._flush_check(got is not None, last_ts, period)
                    self._last_data_wall = time.monotonic()
                    self._sleep(max(self.pull_interval, self.poll_interval, 0.005))
                    continue
                if room <= 0:
                    # The recorder has not written what the buffer holds (a slow disk): wait,
                    # the device keeps the samples. Waiting is not a stall of the source.
                    self._held_back = True
                    self._last_data_wall = time.monotonic()
                    self._stop.wait(max(self.poll_interval, 0.005))  # a flush waits for room
                    continue
                got = self._pull_into(self.buffer)
                now = time.monotonic()
                # Filling all the room means the device may well have more: catching up. So
                # does nothing coming while there is hardly any room (a device that delivers
                # in bursts cannot deliver one): the recorder is behind, the device is not.
                scarce = room < max(64, self.buffer.capacity // 64)
                self._held_back = (got is not None and got[0] >= room) or (got is None and scarce)
                if got is None and scarce:
                    self._last_data_wall = now
                if got is not None:
                    _, first_ts, last_ts = got
                    if self._first_wall is None:
                        self._first_wall = now
                    self._last_data_wall = now
                    if self._stalled_since is not None:
                        self._end_gap(first_ts)
                    self._flush_check(True, last_ts, period)
                    if self.pull_interval and not self._held_back:
                        self._sleep(self.pull_interval - (time.monotonic() - now))
                    elif self._held_back:
                        self._stop.wait(0.005)  # let the recorder write, then take the rest
                    continue
                if self._finished:
                    break
                self._flush_check(False, last_ts, period)
                if (
                    watch_stalls
                    and self._stalled_since is None
                    and now - self._last_data_wall > self.stall_timeout
                ):
                    self._start_gap(last_ts, period, now)
                self._sleep(self.poll_interval)
        except RecallLabError as exc:
            self._error = exc
        except Exception as exc:
            self._error = SourceError(f"{type(self).__name__} stopped: {exc}")
            log.exception("source thread failed")
        finally:
            self._flushed.set()  # nothing more will come: no one waits on a flush
        if self._error is not None:
            self.emit(Event(local_clock(), "recorder", "source_error", str(self._error)))

    def _pull_to_spill(self) -> tuple[float, float] | None:
        """Take what the device has into new memory, within the spill's cap; the first and
        last timestamps, or ``None``."""
        space = self._spill_cap - self._spill_n
        if space <= 0:
            return None  # full: now the device's own buffer has to hold the rest
        chunk = self._pull(space)
        if chunk is None or not len(chunk[1]):
            return None
        data = np.asarray(chunk[0], np.float32)[:space]
        ts = np.asarray(chunk[1], np.float64)[:space]
        if self._spill_n == 0:
            log.warning("%s: the recorder is behind; keeping samples in memory", self.info.name)
        self._spill.append((data, ts))
        self._spill_n += len(ts)
        return float(ts[0]), float(ts[-1])

    def _unspill(self) -> None:
        """Move spilled samples into the ring buffer, oldest first, as far as room allows."""
        while self._spill:
            room = self.buffer.room()
            if room <= 0:
                return
            data, ts = self._spill[0]
            n = self.buffer.write(data[:room], ts[:room])
            if n <= 0:
                return
            self._spill_n -= n
            if n < len(ts):
                self._spill[0] = (data[n:], ts[n:])
            else:
                self._spill.popleft()
        log.info("%s: the recorder caught up", self.info.name)

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
