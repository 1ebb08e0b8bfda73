"""What the app wrote: the closed session file and its keyboard events."""

from __future__ import annotations

import json
from pathlib import Path


def closed_session(path: str | Path):
    """The session at ``path``, which the app must have closed properly."""
    from data_schema.reader import read_session

    s = read_session(path)
    assert s.clean_close, f"{path} was not closed properly"
    return s


def key_events(session_or_path, key: str | None = None) -> list[tuple[str, dict, float]]:
    """``(label, value, timestamp)`` of every keyboard key_down/key_up (of ``key`` only)."""
    s = session_or_path
    if isinstance(s, (str, Path)):
        s = closed_session(s)
    out = []
    for e in s.events:
        if e.source != "keyboard" or e.label not in ("key_down", "key_up"):
            continue
        value = json.loads(e.value)
        if key is None or value["key"] == key:
            out.append((e.label, value, e.timestamp))
    return out
