"""BIDS-style names for session files: ``sub-P042_ses-02_task-demo_run-01_eeg.h5``.

- ``sub``: the pseudonym, letters and digits only (BIDS labels allow nothing else; ``P-042``
  becomes ``P042``);
- ``ses``: the visit. Recordings on the same day are one session; the first recording on a
  later day starts the next session number;
- ``task``: the protocol's name (letters and digits), ``rest`` without a protocol;
- ``run``: the recording's number within that session and task.

The file's own attributes keep the exact pseudonym, protocol and start time; the name only
has to sort and group the way a lab (and ``recall-lab export --bids``) expects. When the folder
is a study (``recall-lab study init``), recordings go into its ``sub-*/ses-*/`` folders.
Qt-free.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from data_schema.names import bids_label, task_label

__all__ = ["bids_label", "earlier_sessions", "next_session_file", "study_at", "task_label"]

_NAME = re.compile(
    r"^sub-(?P<sub>[A-Za-z0-9]+)_ses-(?P<ses>\d+)_task-(?P<task>[A-Za-z0-9]+)"
    r"_run-(?P<run>\d+)_eeg\.h5$"
)


def study_at(out_dir: Path):
    """The study whose folder ``out_dir`` is (:mod:`data_schema.study`), or ``None``."""
    from data_schema.study import STUDY_FILE, Study

    if (Path(out_dir) / STUDY_FILE).is_file():
        return Study.open(out_dir)
    return None


def earlier_sessions(out_dir: Path, participant: str) -> list[Path]:
    """Session files of this participant in ``out_dir``, oldest first (also the names used
    before BIDS-style naming, ``<pseudonym>_<date>-<time>.h5``). In a study folder: the
    participant's files under ``sub-<label>/``."""
    sub = bids_label(participant)
    study = study_at(out_dir)
    if study is not None:
        return [s.path for s in study.sessions() if s.subject == sub]
    try:
        entries = list(Path(out_dir).iterdir())
    except OSError:
        return []
    found = []
    for p in entries:
        m = _NAME.match(p.name)
        if (m and m["sub"] == sub) or re.fullmatch(
            rf"{re.escape(participant)}_\d{{8}}-\d{{6}}\.h5", p.name
        ):
            found.append(p)

    def when(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0

    return sorted(found, key=lambda p: (when(p), p.name))


def next_session_file(
    out_dir: Path,
    participant: str,
    protocol: str,
    today: dt.date | None = None,
    *,
    earlier: list[Path] | None = None,
) -> Path:
    """The name for a new recording of ``participant`` running ``protocol`` in ``out_dir``;
    ``earlier``: :func:`earlier_sessions` if the caller listed the folder already. In a study
    folder the file goes to ``sub-<label>/ses-<visit>/`` (:meth:`Study.place`; the caller
    makes the folders)."""
    out_dir = Path(out_dir)
    today = today or dt.date.today()
    study = study_at(out_dir)
    if study is not None:
        return study.place(participant, today, task=task_label(protocol), existing=earlier)
    sub, task = bids_label(participant), task_label(protocol)
    sessions: dict[int, dt.date] = {}
    runs: dict[tuple[int, str], int] = {}
    if earlier is None:
        earlier = earlier_sessions(out_dir, participant)
    for p in earlier:
        m = _NAME.match(p.name)
        if not m:
            continue
        ses, run = int(m["ses"]), int(m["run"])
        try:
            day = dt.date.fromtimestamp(p.stat().st_mtime)
        except OSError:
            day = today
        sessions[ses] = min(sessions.get(ses, day), day)
        runs[(ses, m["task"])] = max(runs.get((ses, m["task"]), 0), run)
    if not sessions:
        ses = 1
    else:
        last = max(sessions)
        ses = last if sessions[last] == today else last + 1
    run = runs.get((ses, task), 0) + 1
    name = f"sub-{sub}_ses-{ses:02d}_task-{task}_run-{run:02d}_eeg.h5"
    return out_dir / name
