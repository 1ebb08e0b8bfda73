"""A source that turns the engine's continuous valence samples into the ``valence`` stream.

The engine produces cursor samples on the GUI thread; :meth:`ValenceSource.push` only appends
them to a queue. The source's own thread moves them into its ring buffer and the recorder
writes them to ``/streams/valence`` like any other stream, so the GUI thread never touches the
disk.
"""

from __future__ import annotations

import collections
import math
import threading

import numpy as np

from data_schema.types import StreamInfo
from drivers.base import Source


class ValenceSource(Source):
    """The continuous valence rating as a one-channel stream (-1..1, on the LSL clock).

    Parameters
    ----------
    rate
        The rating's sampling rate (the protocol's ``valence.rate``).
    name
        Stream name in the file.
    """

    def __init__(self, rate: float = 20.0, *, name: str = "valence") -> None:
        # Samples arrive only during recall phases: silence between them is not a stall.
        super().__init__(buffer_seconds=600.0, stall_timeout=math.inf)
        self.rate = float(rate)
        self.name = name
        self._pending: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        self._lock = threading.Lock()

    def push(self, values: np.ndarray, timestamps: np.ndarray) -> None:
        """Queue cursor samples ``values [n]`` taken at ``timestamps [n]`` (returns at once)."""
        v = np.asarray(values, dtype=np.float32).reshape(-1, 1)
        t = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        if len(t) != len(v):
            raise ValueError(f"{len(v)} valence values but {len(t)} timestamps")
        if len(t):
            with self._lock:
                self._pending.append((v, t))

    def _connect(self) -> StreamInfo:
        return StreamInfo(
            name=self.name,
            channel_names=["valence"],
            channel_types=["misc"],
            units=["a.u."],
            nominal_rate=self.rate,
            stream_type="Rating",
            source="protocol:valence",
            description={"scale": [-1.0, 1.0], "what": "continuous valence rating cursor"},
        )

    def _pull(self, max_samples: int) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            if not self._pending:
                return None
            chunks = list(self._pending)
            self._pending.clear()
            data = np.concatenate([c[0] for c in chunks])
            ts = np.concatenate([c[1] for c in chunks])
            if len(ts) > max_samples:  # the rest waits for the recorder to catch up
                self._pending.append((data[max_samples:], ts[max_samples:]))
                data, ts = data[:max_samples], ts[:max_samples]
        return data, ts
