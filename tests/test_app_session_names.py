"""BIDS-style session file names: subject, session per visit day, task, run."""

from __future__ import annotations

import datetime as dt
import os
import time

from app.session_names import bids_label, earlier_sessions, next_session_file, task_label

TODAY = dt.date(2026, 11, 30)


def _touch(path, days_ago: int) -> None:
    path.write_bytes(b"")
    t = time.mktime((TODAY - dt.timedelta(days=days_ago)).timetuple()) + 12 * 3600
    os.utime(path, (t, t))


def test_runs_count_up_within_a_day_and_a_new_day_is_a_new_session(tmp_path):
    first = next_session_file(tmp_path, "P042", "demo", today=TODAY)
    assert first.name == "sub-P042_ses-01_task-demo_run-01_eeg.h5"
    _touch(first, days_ago=7)  # recorded a week ago
    again = next_session_file(tmp_path, "P042", "demo", today=TODAY)
    assert again.name == "sub-P042_ses-02_task-demo_run-01_eeg.h5"
    _touch(again, days_ago=0)
    assert next_session_file(tmp_path, "P042", "demo", today=TODAY).name == (
        "sub-P042_ses-02_task-demo_run-02_eeg.h5"
    )
    # Another task the same day: same session, its own run count.
    assert next_session_file(tmp_path, "P042", "rym_recall", today=TODAY).name == (
        "sub-P042_ses-02_task-rymrecall_run-01_eeg.h5"
    )
    # Another participant starts at the beginning.
    assert next_session_file(tmp_path, "P043", "none", today=TODAY).name == (
        "sub-P043_ses-01_task-rest_run-01_eeg.h5"
    )


def test_labels_keep_letters_and_digits_and_old_names_still_count(tmp_path):
    assert bids_label("P-042_a.b") == "P042ab"
    assert task_label("/labs/protocols/rym_recall.yaml") == "rymrecall"
    assert task_label("none") == task_label("") == "rest"
    _touch(tmp_path / "P042_20261101-101500.h5", days_ago=29)  # named before BIDS naming
    _touch(tmp_path / "P0420_20261101-101500.h5", days_ago=29)  # someone else
    _touch(tmp_path / "sub-P042_ses-01_task-demo_run-01_eeg.h5", days_ago=3)
    names = [p.name for p in earlier_sessions(tmp_path, "P042")]
    assert names == ["P042_20261101-101500.h5", "sub-P042_ses-01_task-demo_run-01_eeg.h5"]
