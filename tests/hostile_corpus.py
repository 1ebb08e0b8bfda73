"""Damaged and hostile inputs for the command line, generated into a folder.

Each builder writes one input into a folder and returns its path. They start from one small
valid session (a few seconds of simulated EEG with valence keys) so a damaged file looks like
what a real failure leaves behind: a copy cut short when the disk filled, bytes flipped on a
bad disk, a recording killed before its EEG stream existed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from data_schema.types import StreamInfo
from data_schema.writer import SessionWriter


def valid_session(path: Path) -> Path:
    """A small valid session: 20 s of 4-channel EEG at 100 Hz with valence key presses."""
    from decoding.simulate import SimulationSettings, simulate_session

    return simulate_session(
        path,
        SimulationSettings(
            effect=1.0, seed=3, duration=40.0, n_channels=4, sfreq=100.0, baseline=5.0, recall=15.0
        ),
    )


def _copy(base: Path, d: Path, name: str) -> Path:
    out = d / name
    shutil.copyfile(base, out)
    return out


def cut_in_the_middle(base: Path, d: Path) -> Path:
    """What a full disk leaves of a copy: the first half of a session file."""
    whole = base.read_bytes()
    (d / "cut.h5").write_bytes(whole[: len(whole) // 2])
    return d / "cut.h5"


def flipped_bytes(base: Path, d: Path) -> Path:
    """A session whose HDF5 index nodes are damaged (a bad disk or cable).

    The signature of every B-tree node (``TREE``) and local heap (``HEAP``) is flipped: the
    file still starts like HDF5 and opens, and the damage is found while its groups are read.
    """
    whole = bytearray(base.read_bytes())
    for magic in (b"TREE", b"HEAP"):
        at = whole.find(magic)
        while at >= 0:
            whole[at : at + 4] = bytes(b ^ 0xFF for b in magic)
            at = whole.find(magic, at + 4)
    (d / "flipped.h5").write_bytes(bytes(whole))
    return d / "flipped.h5"


def empty_file(base: Path, d: Path) -> Path:
    (d / "empty.h5").touch()
    return d / "empty.h5"


def text_named_h5(base: Path, d: Path) -> Path:
    (d / "notes.h5").write_text("participant felt calm\n")
    return d / "notes.h5"


def folder_named_h5(base: Path, d: Path) -> Path:
    (d / "folder.h5").mkdir()
    return d / "folder.h5"


def all_nan_eeg(base: Path, d: Path) -> Path:
    """Every EEG sample NaN (an amplifier that sent garbage), timestamps fine."""
    out = _copy(base, d, "nan_eeg.h5")
    with h5py.File(out, "r+") as f:
        ds = f["streams/eeg/data"]
        ds[...] = np.nan
    return out


def nan_timestamps(base: Path, d: Path) -> Path:
    """A stretch of NaN timestamps in the middle of the EEG."""
    out = _copy(base, d, "nan_ts.h5")
    with h5py.File(out, "r+") as f:
        ts = f["streams/eeg/timestamps"]
        n = ts.shape[0]
        ts[n // 3 : n // 3 + 50] = np.nan
    return out


def no_eeg_stream(base: Path, d: Path) -> Path:
    """What a recording killed in its first second holds: the file, no /streams/eeg yet."""
    out = d / "killed_early.h5"
    w = SessionWriter(out, participant_id="P001")
    w.flush()
    w._f.close()  # not close(): a killed process never marks the file clean
    w._release_fd()
    return out


def no_samples(base: Path, d: Path) -> Path:
    """An EEG stream created but with no samples yet (killed just after connecting)."""
    out = d / "no_samples.h5"
    w = SessionWriter(out, participant_id="P001")
    w.add_stream("eeg", StreamInfo("eeg", ["Fz", "Cz"], ["eeg"] * 2, ["uV"] * 2, 250))
    w.flush()
    w._f.close()
    w._release_fd()
    return out


BUILDERS: dict[str, Callable[[Path, Path], Path]] = {
    "cut": cut_in_the_middle,
    "flipped": flipped_bytes,
    "empty": empty_file,
    "text": text_named_h5,
    "folder": folder_named_h5,
    "nan_eeg": all_nan_eeg,
    "nan_timestamps": nan_timestamps,
    "no_eeg": no_eeg_stream,
    "no_samples": no_samples,
}


def build_corpus(d: Path) -> dict[str, Path]:
    """Every hostile input in ``d`` (plus the valid session it started from, as ``valid``)."""
    d.mkdir(parents=True, exist_ok=True)
    base = valid_session(d / "valid.h5")
    corpus = {"valid": base}
    for name, make in BUILDERS.items():
        corpus[name] = make(base, d)
    return corpus
