"""The session clock: LSL's ``local_clock()``, and mappings of other clocks onto it."""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Where liblsl looks for its configuration; a lab's own file there is left to rule.
_LSL_CONFIG_FILES = (
    Path("lsl_api.cfg"),
    Path.home() / "lsl_api" / "lsl_api.cfg",
    Path("/etc/lsl_api/lsl_api.cfg"),
)


#: liblsl's inlet sample pool, in milliseconds of the stream (see :func:`configure_liblsl`).
INLET_RESERVE_MS = 1000


@functools.cache
def configure_liblsl() -> None:
    """Keep liblsl's own log lines off the terminal unless ``-v`` was given, and size its
    inlet sample pool to what recall-lab holds there.

    liblsl prints INFO lines ("Loaded default config") and, when a stream breaks off, ERR
    lines from its threads straight to stderr, which would garble the CLI's one-line errors
    and progress line; recall-lab reports those situations itself (``gap_start`` events, a
    :class:`SourceError`). A lab that set up ``lsl_api.cfg`` or ``LSLAPICFG`` keeps its own
    configuration. liblsl reads its configuration once, so this must run before the first
    resolve, inlet or outlet; later calls do nothing.

    Each inlet builds a pool of ``InletBufferReserveMs`` worth of samples up front (liblsl's
    default 5 s: 10 MB resident for 256 channels at 2 kHz) and grows it when more samples wait
    at once. recall-lab's sources take what waits at least every 0.5 s and keep anything beyond
    that in their own memory, so a 1 s reserve is enough and the pool grows by itself when a
    pull comes late.
    """
    if os.environ.get("LSLAPICFG") or any(p.is_file() for p in _LSL_CONFIG_FILES):
        return
    import pylsl

    level = 0 if logging.getLogger("drivers").isEnabledFor(logging.INFO) else -3
    try:
        pylsl.set_config_content(
            f"[log]\nlevel = {level}\n[tuning]\nInletBufferReserveMs = {INLET_RESERVE_MS}\n"
        )
    except Exception as exc:  # an old liblsl without lsl_set_config_content
        log.debug("could not configure liblsl logging: %s", exc)


def local_clock() -> float:
    """Seconds on the LSL clock (monotonic, shared by every stream in a session)."""
    import pylsl

    configure_liblsl()
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


class Dejitter:
    """Smooth the timestamps of a regularly sampled stream, restarting at every gap.

    Timestamps stamped when a chunk arrives scatter by milliseconds around the true sample
    times. Within one *segment* (samples since the stream started or came back after a
    gap) the true times lie on a line ``t = a + b * k`` over the sample index ``k``; ``a`` and
    ``b`` are fit by exponentially weighted least squares (half the weight is older than
    ``halftime`` seconds, as in liblsl), so a device clock that drifts against this one is
    followed. The slope starts at ``1 / nominal_rate`` and the data take over within seconds.

    liblsl's own dejittering (``proc_dejitter``) notices that a stream was recovered only at
    its next clock-sync check (at most every 50 samples and 0.5 s), so the first samples
    after a reconnection were placed right after the old ones, seconds too early; this one
    restarts as soon as the source reports a gap, or when a timestamp is far off the line.

    Parameters
    ----------
    nominal_rate
        Samples per second the device promises (> 0).
    halftime
        Seconds after which a sample's weight in the fit has halved.
    max_error
        A timestamp further than this (seconds) from the fitted line starts a new segment.
    """

    def __init__(self, nominal_rate: float, halftime: float = 90.0, max_error: float = 0.5):
        if not nominal_rate > 0:
            raise ValueError("dejittering needs a nominal rate > 0")
        self.period = 1.0 / nominal_rate
        self.forget = 0.5 ** (1.0 / (nominal_rate * halftime))
        # Prior on the slope: as much weight as about one second of samples carries.
        self._prior = nominal_rate**3 / 3.0
        self.max_error = max_error
        self.segments = 0
        self._terms: dict[int, tuple] = {}
        self.reset()

    def reset(self) -> None:
        """Start a new segment with the next sample (after a gap or a reconnection)."""
        self._n = 0
        self._t_ref = 0.0
        self._sums = (0.0, 0.0, 0.0, 0.0, 0.0)  # sum w, w*k, w*y, w*k*k, w*k*y over the segment

    def _line(self) -> tuple[float, float]:
        s0, sk, sy, skk, sky = self._sums
        # Normal equations with the slope prior folded in.
        a11, a12, a22 = s0, sk, skk + self._prior
        b1, b2 = sy, sky + self._prior * self.period
        det = a11 * a22 - a12 * a12
        if det <= 0:
            return (sy / s0 if s0 else 0.0), self.period
        return (b1 * a22 - a12 * b2) / det, (a11 * b2 - a12 * b1) / det

    def _chunk_terms(self, n: int) -> tuple:
        """What depends only on the chunk length: i = 0..n-1, i*i, the weights w (the last
        sample weighs 1) and w*i, with sum w, sum w*i, sum w*i*i. Chunks come in a few sizes,
        so a few are kept: a chunk then costs a handful of array operations."""
        terms = self._terms.get(n)
        if terms is None:
            i = np.arange(n, dtype=np.float64)
            w = self.forget ** (n - 1 - i)
            wi = w * i
            terms = (i, i * i, w, wi, float(w.sum()), float(wi.sum()), float(wi @ i))
            if len(self._terms) >= 8:  # pulls of whatever waits: lengths vary, keep few
                self._terms.clear()
            self._terms[n] = terms
        return terms

    def __call__(self, timestamps: np.ndarray) -> np.ndarray:
        """Smoothed timestamps for the next chunk of samples."""
        ts = np.asarray(timestamps, dtype=np.float64)
        n = len(ts)
        if n == 0:
            return ts
        if self._n:
            a, b = self._line()
            predicted = self._t_ref + a + b * self._n
            if abs(ts[0] - predicted) > self.max_error:
                self.reset()
        if self._n == 0:
            self._t_ref = float(ts[0])
            self.segments += 1
        n0 = float(self._n)  # sample index k = n0 + i
        i, i2, w, wi, sw, swi, swii = self._chunk_terms(n)
        y = ts - self._t_ref
        wy, wiy = float(w @ y), float(wi @ y)
        previous = self._line() if self._n else None
        decay = self.forget**n
        s0, sk, sy, skk, sky = self._sums
        self._sums = (
            s0 * decay + sw,
            sk * decay + n0 * sw + swi,
            sy * decay + wy,
            skk * decay + n0 * n0 * sw + 2 * n0 * swi + swii,
            sky * decay + n0 * wy + wiy,
        )
        self._n += n
        a, b = self._line()
        a1, b1 = a + b * n0, b  # the new line over i: a1 + b1 * i
        if previous is None:
            return (self._t_ref + a1) + b1 * i
        # Move from the old line to the new one across the chunk rather than in one step at
        # its first sample, as a per-sample fit would: intervals stay smooth. With the ramp
        # (i + 1) / n the blend is a quadratic in i.
        a0, b0 = previous[0] + previous[1] * n0, previous[1]
        da, db = a1 - a0, b1 - b0
        c0 = self._t_ref + a0 + da / n
        c1 = b0 + (da + db) / n
        return c0 + c1 * i + (db / n) * i2


X11_WRAP_MS = 2**32  # X11 timestamps are 32-bit milliseconds
X11_MAX_DELAY_MS = 2000.0


def x11_time(stamp_ms: int, read_time: float, *, offset_s: float = 0.0) -> float:
    """An X server timestamp (32-bit ms of ``CLOCK_MONOTONIC``) as LSL seconds.

    Parameters
    ----------
    stamp_ms
        The server's timestamp of an event (``Time``, milliseconds, wraps every 49.7 days).
    read_time
        LSL seconds read after the event reached this process; it resolves the wrap-around.
    offset_s
        Added to the server's time: ``lsl = stamp_ms / 1000 + offset_s`` (after unwrapping).
        A local server truncates its clock to the millisecond, so ``0.0005`` puts the event
        at the centre of its millisecond instead of at its start; a server on another machine
        needs the measured offset between its clock and this one.

    Returns
    -------
    float
        The event's LSL time, never later than ``read_time``. A stamp more than 2 s before
        ``read_time`` (or more than 1 s after it) is not trusted and ``read_time`` is returned.
        With ``offset_s=0`` this is what ``app/keys.py`` computes for Qt's key events.
    """
    if not stamp_ms:
        return read_time
    # Centred window: an event stamped in the same millisecond as read_time gives a small
    # negative delay once offset_s is added, not one of 49.7 days.
    delay_ms = ((read_time - offset_s) * 1000.0 - stamp_ms + 1000.0) % X11_WRAP_MS - 1000.0
    if delay_ms > X11_MAX_DELAY_MS:
        return read_time
    return min(read_time, read_time - delay_ms / 1000.0)


def monotonic_to_lsl_offset(n: int = 25) -> tuple[float, float]:
    """``lsl - CLOCK_MONOTONIC`` in seconds, and the widest bracket of the readings.

    liblsl's clock is ``std::chrono::steady_clock``, which is ``CLOCK_MONOTONIC`` on Linux, so
    the offset is zero to within a microsecond there; it is measured rather than assumed so
    that device times on ``CLOCK_MONOTONIC`` (the X server's, the kernel's input events) stay
    right with a liblsl or platform that differs.
    """
    offsets, widths = [], []
    for _ in range(n):
        a = local_clock()
        m = time.clock_gettime(time.CLOCK_MONOTONIC)
        b = local_clock()
        offsets.append((a + b) / 2 - m)
        widths.append(b - a)
    return float(np.median(offsets)), float(np.max(widths))
