"""The session clock: LSL's ``local_clock()``, and mappings of other clocks onto it."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


def local_clock() -> float:
    """Seconds on the LSL clock (monotonic, shared by every stream in a session)."""
    import pylsl

    return pylsl.local_clock()


@dataclass
class UnixToLslMapping:
    """``lsl = unix + offset``, measured by reading both clocks back to back.

    The offset is the median over several readings, each bracketed by two LSL readings so the
    uncertainty is known. It is stored with the stream (``clock_mapping`` attribute).
    """

    offset: float
    uncertainty: float
    n_readings: int

    @classmethod
    def measure(cls, n: int = 25) -> UnixToLslMapping:
        offsets, widths = [], []
        for _ in range(n):
            a = local_clock()
            u = time.time()
            b = local_clock()
            offsets.append((a + b) / 2 - u)
            widths.append(b - a)
        return cls(float(np.median(offsets)), float(np.max(widths)), n)

    def to_lsl(self, unix_times: np.ndarray) -> np.ndarray:
        return np.asarray(unix_times, dtype=np.float64) + self.offset

    def as_dict(self) -> dict[str, object]:
        return {"clock": "lsl", "from": "unix", "method": "lsl = unix + offset", **asdict(self)}
