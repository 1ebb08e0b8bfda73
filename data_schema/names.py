"""BIDS labels for pseudonyms and tasks (Qt-free; the console and studies share them)."""

from __future__ import annotations

import re
from pathlib import Path


def bids_label(text: str, default: str = "") -> str:
    """``text`` with everything but letters and digits removed (a BIDS label)."""
    return re.sub(r"[^A-Za-z0-9]", "", text or "") or default


def task_label(protocol: str) -> str:
    """The task entity for a protocol name or file (``rym_recall.yaml`` -> ``rymrecall``)."""
    name = Path(protocol).stem if protocol and protocol != "none" else ""
    return bids_label(name, "rest")
