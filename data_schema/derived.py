"""Results of offline stages, stored in the session file under ``/derived/<stage>/run-NNN``.

A rerun always creates a new run group; nothing is overwritten.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py

from data_schema.errors import SessionFileError
from data_schema.reader import open_session_file
from data_schema.versions import software_versions
from data_schema.writer import utc_now_iso

_RUN_RE = re.compile(r"^run-(\d+)$")
_STAGE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@contextmanager
def new_derived_run(
    path: str | Path, stage: str, config: Mapping[str, Any] | None = None
) -> Iterator[h5py.Group]:
    """Open ``path`` for appending and yield a new group ``/derived/<stage>/run-NNN``.

    The group carries ``created_at``, ``software_versions`` and ``config`` (JSON). The file is
    flushed and closed when the block ends; if the block raises, the partial run is removed.
    """
    if not _STAGE_RE.fullmatch(stage):
        raise ValueError(f"stage name {stage!r}: lowercase letters, digits and '_'")
    f = open_session_file(path, mode="r+")
    try:
        stages = f.require_group("derived").require_group(stage)
        numbers = [int(m.group(1)) for k in list(stages) if (m := _RUN_RE.fullmatch(k))]
        name = f"run-{(max(numbers) + 1 if numbers else 1):03d}"
        g = stages.create_group(name)
        g.attrs["created_at"] = utc_now_iso()
        g.attrs["software_versions"] = json.dumps(software_versions())
        g.attrs["config"] = json.dumps(dict(config or {}), default=str)
        try:
            yield g
        except BaseException:
            del stages[name]
            raise
        f.flush()
    finally:
        f.close()


def list_derived_runs(path: str | Path, stage: str) -> list[str]:
    """Names of the runs of ``stage`` in ``path``, oldest first."""
    with open_session_file(path) as f:
        if "derived" not in f or stage not in f["derived"]:
            return []
        return sorted(k for k in list(f["derived"][stage]) if _RUN_RE.fullmatch(k))


def latest_derived_run(path: str | Path, stage: str) -> str:
    """HDF5 path of the newest run of ``stage``; raises if there is none."""
    runs = list_derived_runs(path, stage)
    if not runs:
        raise SessionFileError(f"{path} has no {stage} results yet")
    return f"/derived/{stage}/{runs[-1]}"
