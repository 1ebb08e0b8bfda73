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


@functools.cache
def configure_liblsl() -> None:
    """Keep liblsl's own log lines off the terminal unless ``-v`` was given.

    liblsl prints INFO lines ("Loaded default config") and, when a stream breaks off, ERR
    lines from its threads straight to stderr, which would garble the CLI's one-line errors
    and progress line; recall-lab reports those situations itself (``gap_start`` events, a
    :class:`SourceError`). A lab that set up ``lsl_api.cfg`` or ``LSLAPICFG`` keeps its own
    configuration. liblsl reads its configuration once, so this must run before the first
    resolve, inlet or outlet; later calls do nothing.
    """
    if os.environ.get("LSLAPICFG") or any(p.is_file() for p in _LSL_CONFIG_FILES):
        return
    import pylsl

    level = 0 if logging.getLogger("drivers").isEnabledFor(logging.INFO) else -3
    try:
        pylsl.set_config_content(f"[log]\nlevel = {level}\n")
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
