"""Valence reporting during recall: discrete keys (as in RYM) or a continuous cursor.

A :class:`ValenceReporter` is a small state machine fed timestamped key downs and ups (LSL
seconds, taken in the GUI's key handler) and advanced to a time with :meth:`advance`. It never
reads a clock, so the same inputs always give the same reports.

Discrete mode
    The report is ``positive`` while the positive key is held, ``negative`` while the negative
    key is held (the most recent press wins if both are), and stays so for ``neutral_after``
    seconds after the key is released; then it becomes ``neutral``. Auto-repeat key downs (the
    operating system repeating a held key) are recorded by the engine but are not new presses.
Continuous mode
    A cursor in [-1, 1] moves at ``speed`` units per second while the positive (up) or negative
    (down) key is held; both held cancel. It is sampled on a fixed grid, ``rate`` samples per
    second from the start of the phase, computed exactly from the key times rather than from
    when the loop happened to run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from protocols.model import ValenceConfig

Valence = Literal["positive", "negative", "neutral"]

_KEY_ALIASES = {
    " ": "space",
    "spacebar": "space",
    "return": "enter",
    "esc": "escape",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "key_up": "up",
}


def normalize_key(key: str) -> str:
    """The canonical name of a key: lower case, ``space``, ``enter``, ``up``, ``1``, ``a``...

    The GUI may pass Qt's key text or name; both map to the same name so protocol files can
    say ``positive_key: "1"`` or ``continue_key: space``.
    """
    k = str(key)
    if k != " ":
        k = k.strip()
    k = k.lower()
    if k.startswith("key_") and len(k) > 4:
        k = k[4:]
    return _KEY_ALIASES.get(k, k)


@dataclass(frozen=True)
class ValenceChange:
    """The discrete report changed to ``valence`` at ``timestamp`` (LSL seconds)."""

    timestamp: float
    valence: Valence


class ValenceReporter:
    """Turn timestamped key presses into a valence report.

    Parameters
    ----------
    config
        The protocol's (or recall phase's) valence settings.
    start_time
        LSL time the reporting starts (the recall phase start); the continuous cursor's first
        sample is taken here.
    """

    def __init__(self, config: ValenceConfig, start_time: float) -> None:
        self.config = config
        self.mode = config.mode
        self._keys = {
            normalize_key(config.positive_key): "positive",
            normalize_key(config.negative_key): "negative",
        }
        self._time = float(start_time)
        self._start = float(start_time)
        # key -> time it went down (insertion order = press order, so the last one wins)
        self._held: dict[str, float] = {}
        self._state: Valence = "neutral"
        self._last_activity = float(start_time)
        self._changes: list[ValenceChange] = []
        self.presses = {"positive": 0, "negative": 0}
        self.auto_repeats = 0
        # continuous
        self._cursor = float(config.start)
        self._n_samples = 0
        self._sample_ts: list[float] = []
        self._sample_values: list[float] = []

    # ------------------------------------------------------------------ queries
    def meaning(self, key: str) -> Valence | None:
        """``positive``/``negative`` for the two valence keys, ``None`` for any other key."""
        return self._keys.get(normalize_key(key))

    @property
    def state(self) -> Valence:
        """The report at the last time the reporter was advanced to."""
        if self.mode == "continuous":
            if self._cursor > 0:
                return "positive"
            return "negative" if self._cursor < 0 else "neutral"
        return self._state

    @property
    def cursor(self) -> float:
        """The continuous cursor in [-1, 1] (the start value in discrete mode)."""
        return self._cursor

    @property
    def time(self) -> float:
        """The time the reporter was last advanced to."""
        return self._time

    # ------------------------------------------------------------------ inputs
    def key_down(self, key: str, timestamp: float, *, auto_repeat: bool = False) -> bool:
        """A key went down at ``timestamp``; returns whether it counts as a new valence press.

        An auto-repeat of a key already held changes nothing. An auto-repeat of a valence key
        the reporter did not see go down (it was pressed before the phase began) means the key
        is held: the report follows it, but it is not counted as a press.
        """
        valence = self.meaning(key)
        self.advance(timestamp)
        if valence is None or self.mode == "off":
            return False
        k = normalize_key(key)
        if auto_repeat:
            self.auto_repeats += 1
            if k in self._held:
                return False
        self._held.pop(k, None)  # a repeated down without an up: re-insert as the latest
        self._held[k] = timestamp
        self._last_activity = timestamp
        if self.mode == "discrete":
            self._set(timestamp, valence)
        if auto_repeat:
            return False
        self.presses[valence] += 1
        return True

    def key_up(self, key: str, timestamp: float) -> bool:
        """A key went up at ``timestamp``; returns whether it was a held valence key."""
        self.advance(timestamp)
        k = normalize_key(key)
        if k not in self._keys or self.mode == "off" or k not in self._held:
            return False
        del self._held[k]
        self._last_activity = timestamp
        if self.mode == "discrete" and self._held:
            self._set(timestamp, self._keys[next(reversed(self._held))])
        return True

    def advance(self, now: float) -> None:
        """Bring the report up to ``now`` (times earlier than the last one are ignored)."""
        if now <= self._time:
            return
        if self.mode == "discrete":
            if not self._held and self._state != "neutral":
                due = self._last_activity + self.config.neutral_after
                if due <= now:
                    self._set(due, "neutral")
        elif self.mode == "continuous":
            rate = self.config.rate
            while True:
                t = self._start + self._n_samples / rate
                if t > now:
                    break
                self._move_to(t)
                self._sample_ts.append(t)
                self._sample_values.append(self._cursor)
                self._n_samples += 1
            self._move_to(now)
        self._time = now

    # ------------------------------------------------------------------ outputs
    def pop_changes(self) -> list[ValenceChange]:
        """Discrete report changes since the last call, in time order."""
        out, self._changes = self._changes, []
        return out

    def pop_samples(self) -> tuple[np.ndarray, np.ndarray]:
        """Continuous cursor samples since the last call: ``(values [n], timestamps [n])``."""
        values = np.asarray(self._sample_values, dtype=np.float32)
        ts = np.asarray(self._sample_ts, dtype=np.float64)
        self._sample_values, self._sample_ts = [], []
        return values, ts

    # ------------------------------------------------------------------ internals
    def _set(self, timestamp: float, valence: Valence) -> None:
        if valence != self._state:
            self._state = valence
            self._changes.append(ValenceChange(timestamp, valence))

    def _velocity(self) -> float:
        up = any(self._keys[k] == "positive" for k in self._held)
        down = any(self._keys[k] == "negative" for k in self._held)
        return self.config.speed * (int(up) - int(down))

    def _move_to(self, t: float) -> None:
        # Velocity is constant between key events (the engine advances to each key's time
        # before applying it), so clipping at the segment's end is exact.
        dt = t - self._time
        if dt > 0:
            self._cursor = float(np.clip(self._cursor + self._velocity() * dt, -1.0, 1.0))
            self._time = t
