"""The ring buffer every source fills, and the event log beside it.

A :class:`RingBuffer` keeps the last ``capacity`` samples of a stream in preallocated memory.
Positions are absolute sample counts, so each reader keeps its own cursor:

- a *lossy* reader (the scope) calls :meth:`RingBuffer.read_since` and, if it fell more than a
  buffer behind, learns exactly how many samples it missed;
- a *lossless* reader (the recorder) takes a :meth:`RingBuffer.hold` at its cursor. Samples
  at or after a hold are never overwritten: :meth:`RingBuffer.room` tells the source how many
  it may add, and a source that must wait leaves the samples in the device's or liblsl's own
  buffer. The holder reads without copying (:meth:`RingBuffer.view_since`) and moves its hold
  on once the samples are on disk.

A source either hands over a chunk (:meth:`RingBuffer.write`) or, to skip a copy, has the
device write straight into the buffer: :meth:`RingBuffer.claim` lends it the next free slots
and :meth:`RingBuffer.commit` publishes them.

The memory is touched when the buffer is made, so filling it never page-faults while
recording.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from data_schema.types import Event


class RingBuffer:
    """The last ``capacity`` samples of a stream, with a count of every sample ever written.

    Parameters
    ----------
    n_channels, capacity
        Shape of the buffer.
    dtype
        Sample type (``float32`` for every source in recall-lab).
    """

    def __init__(self, n_channels: int, capacity: int, dtype: np.dtype | type = np.float32):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = int(capacity)
        # np.empty + fill: the pages are resident from now on (np.zeros would map them lazily
        # and fault them in, one by one, during the first pass of a recording).
        self._data = np.empty((self.capacity, n_channels), dtype=dtype)
        self._data.fill(0)
        self._ts = np.zeros(self.capacity, dtype=np.float64)
        self._ts.fill(0.0)
        self._count = 0
        self._claimed = 0
        self._holds: dict[object, int] = {}
        self._dropped = 0
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    @property
    def n_channels(self) -> int:
        return self._data.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def nbytes(self) -> int:
        return self._data.nbytes + self._ts.nbytes

    @property
    def count(self) -> int:
        """Samples written since creation."""
        return self._count

    @property
    def dropped(self) -> int:
        """Samples a source handed over that did not fit beside the holds (never written)."""
        return self._dropped

    # ------------------------------------------------------------------ holds
    def hold(self, owner: object, position: int) -> None:
        """Keep every sample from ``position`` on until ``owner`` moves or releases its hold."""
        with self._lock:
            self._holds[owner] = max(0, min(int(position), self._count))

    def release(self, owner: object) -> None:
        """Drop ``owner``'s hold (nothing happens if it has none)."""
        with self._lock:
            self._holds.pop(owner, None)

    def _room(self) -> int:
        if not self._holds:
            return self.capacity
        return self.capacity - (self._count - min(self._holds.values()))

    def room(self) -> int:
        """Samples that can be added now without overwriting a held one."""
        with self._lock:
            return self._room()

    # ------------------------------------------------------------------ listeners
    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` (from the source's thread) whenever new samples are published."""
        self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Callable[[], None]) -> None:
        self._listeners = [f for f in self._listeners if f is not fn]

    def _notify(self) -> None:
        for fn in self._listeners:
            fn()

    # ------------------------------------------------------------------ writing
    def write(self, data: np.ndarray, timestamps: np.ndarray) -> int:
        """Append ``data`` [n x channels] and ``timestamps`` [n].

        Without holds a chunk longer than the buffer keeps its tail. With holds, samples that
        do not fit are not written (the held ones are never overwritten) and are counted in
        :attr:`dropped`. Returns the number of samples written.
        """
        n = len(timestamps)
        if n == 0:
            return 0
        if data.shape != (n, self.n_channels):
            raise ValueError(f"chunk {data.shape} does not fit {self.n_channels} channels")
        cap = self.capacity
        with self._lock:
            if self._holds:
                fit = max(0, min(n, self._room()))
                self._dropped += n - fit
                data, timestamps, n = data[:fit], timestamps[:fit], fit
                if n == 0:
                    return 0
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
        self._notify()
        return n

    def claim(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Lend the next free slots, at most ``n``, for the source to fill in place.

        Returns one or two ``(data [k x channels], timestamps [k])`` views of contiguous memory
        (two when the slots wrap around the end of the buffer; fill the first before the
        second); none when holds leave no room. Readers never see claimed slots;
        :meth:`commit` publishes the first of them. One claim at a time (the source's thread).
        """
        with self._lock:
            k = max(0, min(int(n), self._room()))
            # While claimed, the oldest k samples are being overwritten: readers skip them.
            self._claimed = k
            start = self._count % self.capacity
        out = []
        while k > 0:
            m = min(k, self.capacity - start)
            out.append((self._data[start : start + m], self._ts[start : start + m]))
            k -= m
            start = 0
        return out

    def commit(self, n: int) -> None:
        """Publish the first ``n`` claimed slots, in order (0 gives the claim back)."""
        with self._lock:
            claimed, self._claimed = self._claimed, 0
            if not 0 <= n <= claimed:
                raise ValueError(f"commit of {n} samples; {claimed} were claimed")
            self._count += int(n)
        if n:
            self._notify()

    # ------------------------------------------------------------------ reading
    def _oldest(self) -> int:
        """First position still intact (claimed slots are being overwritten)."""
        return max(0, self._count - (self.capacity - self._claimed))

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
        """Samples written after ``position`` (copies).

        Returns ``(data, timestamps, new_position, n_lost)``; ``n_lost`` counts samples that
        were overwritten before this reader got to them.
        """
        with self._lock:
            end = self._count
            begin = max(position, self._oldest())
            lost = begin - position
            data, ts = self._copy(begin, end)
        return data, ts, end, lost

    def view_since(
        self, owner: object, end: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The samples from ``owner``'s hold up to ``end`` (default: all), without copying.

        Returns one or two ``(data, timestamps)`` views (two when the span wraps around the
        end of the buffer). They stay valid until ``owner`` moves its hold past them.
        """
        with self._lock:
            begin = self._holds[owner]
            stop = self._count if end is None else min(int(end), self._count)
        cap = self.capacity
        out = []
        while begin < stop:
            a = begin % cap
            k = min(stop - begin, cap - a)
            out.append((self._data[a : a + k], self._ts[a : a + k]))
            begin += k
        return out

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The last ``n`` samples (fewer if fewer were written)."""
        with self._lock:
            end = self._count
            begin = max(self._oldest(), end - n)
            return self._copy(begin, end)


class EventLog:
    """An append-only, thread-safe list of events; readers keep their own index."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def add_listener(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` (from the appending thread) after every new event."""
        self._listeners = [*self._listeners, fn]

    def remove_listener(self, fn: Callable[[], None]) -> None:
        self._listeners = [f for f in self._listeners if f is not fn]

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
        for fn in self._listeners:
            fn()

    def read_since(self, position: int) -> tuple[list[Event], int]:
        with self._lock:
            return self._events[position:], len(self._events)

    def __len__(self) -> int:
        return len(self._events)
