"""Tell a held key's auto-repeat from real presses in a window system's key events.

An X server repeating a held key sends a key release and a key press with the same server
timestamp, over and over, until the key really goes up. Qt flags most of these pairs as
auto-repeat but not all of them (it only looks at what is already queued when the release
arrives: a 4 s hold gave 39 presses flagged as new), so a recording that trusted the flag had
three times as many key ups as downs. :class:`ReleasePressPairs` holds each release back until
it knows whether a press of the same key with the same timestamp follows it, and reports a
physical press as one down, any number of repeats, and one up.

It is fed timestamped events and asked to flush pending releases; it never reads a clock, so it
is tested without a window system (``tests/test_app_participant_input.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: A release and a press this close together (seconds) are one auto-repeat. X servers stamp both
#: with the same millisecond; allow for one rounding step.
PAIR_TOLERANCE = 0.0011


@dataclass(frozen=True)
class KeyChange:
    """One key event as the protocol should see it."""

    key: str
    down: bool
    timestamp: float
    repeat: bool = False


class ReleasePressPairs:
    """Turn a window system's key presses and releases into presses, repeats and releases.

    Feed every event with :meth:`press` and :meth:`release`; each returns the changes that are
    now certain, in order. A release is held back until the next event (or :meth:`flush` with a
    time past ``hold`` seconds after it): a press of the same key with the same timestamp makes
    both a repeat; anything else confirms the release.
    """

    def __init__(self, hold: float = 0.04) -> None:
        self.hold = float(hold)
        self._pending: KeyChange | None = None
        self._down: set[str] = set()

    @property
    def down(self) -> frozenset[str]:
        """Keys down now (a pending release still counts as down)."""
        return frozenset(self._down)

    @property
    def pending_since(self) -> float | None:
        """Timestamp of the release being held back, or ``None``."""
        return self._pending.timestamp if self._pending is not None else None

    def press(self, key: str, timestamp: float, *, repeat_hint: bool = False) -> list[KeyChange]:
        """A key press at ``timestamp``; ``repeat_hint`` is the window system's own flag."""
        out: list[KeyChange] = []
        p = self._pending
        if p is not None:
            self._pending = None
            if p.key == key and abs(timestamp - p.timestamp) <= PAIR_TOLERANCE:
                return [KeyChange(key, True, timestamp, repeat=True)]
            out.append(self._confirm(p))
        repeat = repeat_hint or key in self._down
        self._down.add(key)
        out.append(KeyChange(key, True, timestamp, repeat=repeat))
        return out

    def release(self, key: str, timestamp: float, *, repeat_hint: bool = False) -> list[KeyChange]:
        """A key release at ``timestamp``; held back until its fate is known."""
        out: list[KeyChange] = []
        if self._pending is not None:
            out.append(self._confirm(self._pending))
            self._pending = None
        if repeat_hint and key in self._down:
            return out  # the window system knows a press follows with the same time
        self._pending = KeyChange(key, False, timestamp)
        return out

    def flush(self, now: float | None = None) -> list[KeyChange]:
        """Confirm a held-back release if ``now`` is ``hold`` past it (``None``: at once)."""
        p = self._pending
        if p is None or (now is not None and now - p.timestamp < self.hold):
            return []
        self._pending = None
        return [self._confirm(p)]

    def _confirm(self, release: KeyChange) -> KeyChange:
        self._down.discard(release.key)
        return release
