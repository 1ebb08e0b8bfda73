"""Files that are not usable sessions: one clear line, a non-zero exit, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_schema.errors import SessionFileError
from data_schema.reader import read_session
from data_schema.types import StreamInfo
from data_schema.writer import SessionWriter

REPO = Path(__file__).resolve().parents[1]


def _session(path: Path) -> Path:
    with SessionWriter(path, participant_id="P001") as w:
        w.add_stream(
            "eeg", StreamInfo("eeg", [f"E{i}" for i in range(8)], ["eeg"] * 8, ["uV"] * 8, 250)
        )
        for i in range(40):
            w.append("eeg", np.full((1000, 8), i, np.float32), i * 4 + np.arange(1000) / 250)
    return path


def _missing(d: Path) -> Path:
    return d / "nowhere.h5"


def _folder(d: Path) -> Path:
    (d / "session.h5").mkdir()
    return d / "session.h5"


def _empty(d: Path) -> Path:
    (d / "empty.h5").touch()
    return d / "empty.h5"


def _text(d: Path) -> Path:
    (d / "notes.h5").write_text("participant felt calm\n")
    return d / "notes.h5"


def _edf(d: Path) -> Path:
    import edfio

    edf = edfio.Edf([edfio.EdfSignal(np.zeros(512), sampling_frequency=256, label="Fz")])
    edf.write(d / "rec.edf")
    return d / "rec.edf"


def _foreign_hdf5(d: Path) -> Path:
    with h5py.File(d / "other.h5", "w") as f:
        f["eeg"] = np.zeros((10, 4))
        f.attrs["format"] = "someone-elses-format"
    return d / "other.h5"


def _truncated(d: Path) -> Path:
    whole = _session(d / "whole.h5").read_bytes()
    (d / "cut.h5").write_bytes(whole[: len(whole) * 6 // 10])  # a copy cut short
    return d / "cut.h5"


def _newer_schema(d: Path) -> Path:
    path = _session(d / "future.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["schema_version"] = "2.0"
    return path


CASES = {
    "missing": (_missing, "no such file"),
    "folder": (_folder, "is a folder"),
    "empty": (_empty, "is empty"),
    "text": (_text, "not an HDF5 file"),
    "edf": (_edf, "recall-lab import"),
    "foreign hdf5": (_foreign_hdf5, "not a recall-lab session"),
    "truncated": (_truncated, "truncated"),
    "newer schema": (_newer_schema, "schema 2.0"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_file_gives_one_line_and_a_non_zero_exit(tmp_path, case):
    make, expected = CASES[case]
    path = make(tmp_path)
    before = path.read_bytes() if path.is_file() else None
    for command in ("info", "validate"):
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", command, str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode not in (0, 1), (command, proc.returncode)  # 1 = invalid session
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"recall-lab {command}: error: ")
        assert expected in lines[0]
        assert proc.stdout == ""
    with pytest.raises(SessionFileError, match=expected) as err:
        read_session(path)
    assert "\n" not in str(err.value)
    if before is not None:
        assert path.read_bytes() == before  # looking never changes a file


def test_real_xdf_recording_is_pointed_to_import(shared_data, tmp_path):
    src = shared_data / "markersPlusEKG.xdf"
    path = tmp_path / "markersPlusEKG.h5"  # renamed: the contents decide, not the extension
    shutil.copy(src, path)
    with pytest.raises(SessionFileError, match="recall-lab import"):
        read_session(path)


def test_a_malformed_session_is_explained_not_dumped(tmp_path):
    path = _session(tmp_path / "s.h5")
    with h5py.File(path, "r+") as f:
        del f["streams/eeg/timestamps"]
    info = subprocess.run(
        [sys.executable, "-m", "app.cli", "info", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 2 and "Traceback" not in info.stderr
    (line,) = info.stderr.strip().splitlines()
    assert "does not follow the session spec" in line and "recall-lab validate" in line
    val = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert val.returncode == 1
    assert val.stdout.startswith("error: /streams/eeg: data or timestamps is missing")
