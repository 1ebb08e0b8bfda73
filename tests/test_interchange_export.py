"""Export: round trips through FIF, EDF and BrainVision, a valid BIDS dataset, and BrainFlow's
playback-file board replaying our samples."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from bids_check import assert_bids_valid
from test_interchange_helpers import make_session

from data_schema.exporters import export_session
from data_schema.importers import import_recording
from data_schema.reader import annotation_description, read_session
from data_schema.recordings import load_recording


@pytest.fixture
def session_path(tmp_path: Path) -> Path:
    return make_session(tmp_path / "session.h5")


def _volts(path: Path) -> np.ndarray:
    eeg = read_session(path).eeg
    return eeg.data.astype(np.float64) * 1e-6  # stored in microvolts


@pytest.mark.parametrize(
    ("fmt", "name"), [("fif", "x_raw.fif"), ("edf", "x.edf"), ("brainvision", "x.vhdr")]
)
def test_export_then_import_round_trip(session_path: Path, tmp_path: Path, fmt, name) -> None:
    out = tmp_path / name
    export_session(session_path, fmt, out)
    back = tmp_path / "back.h5"
    import_recording(out, back, participant_id="P007")
    original = read_session(session_path)
    imported = read_session(back)
    got, want = imported.eeg.data.astype(np.float64), _volts(session_path)
    assert got.shape == want.shape
    assert imported.eeg.info.channel_names == original.eeg.info.channel_names
    assert imported.eeg.info.units == ["V"] * 4
    if fmt == "edf":
        # EDF stores 16-bit integers scaled to each signal's physical range (written in uV in
        # the header): samples come back within one step of that scale.
        import edfio

        signals = edfio.read_edf(out).signals
        step = np.array(
            [
                (s.physical_range.max - s.physical_range.min)
                / (s.digital_range.max - s.digital_range.min)
                for s in signals
            ]
        )
        assert [s.physical_dimension for s in signals] == ["uV"] * 4
        assert np.all(np.abs(got - want) <= step * 1e-6)
    else:
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-12)
    # Events come back at their sample, with their label and value.
    want_events = [
        (round((e.timestamp - 5000.0) * 250), annotation_description(e)) for e in original.events
    ]
    got_events = [(round(e.timestamp * 250), e.label) for e in imported.events]
    if fmt == "brainvision":
        # MNE reads BrainVision markers as "<type>/<description>"; commas travel as ';'.
        got_events = [(i, d.removeprefix("Comment/")) for i, d in got_events]
        want_events = [(i, d.replace(",", ";")) for i, d in want_events]
    assert got_events == want_events


def test_bids_export_passes_the_bids_validator(session_path: Path, tmp_path: Path) -> None:
    root = tmp_path / "bids"
    export_session(session_path, "bids", root, line_freq=50.0)
    eeg_dir = root / "sub-P007" / "eeg"
    events = (eeg_dir / "sub-P007_task-recall_events.tsv").read_text().splitlines()
    assert events[0].split("\t")[:3] == ["onset", "duration", "trial_type"]
    assert len(events) == 1 + 3
    assert "key_down/" in events[1] and "phase_start/" in events[2]
    sidecar = json.loads((eeg_dir / "sub-P007_task-recall_eeg.json").read_text())
    assert sidecar["SamplingFrequency"] == 250.0
    assert sidecar["PowerLineFrequency"] == 50.0
    assert_bids_valid(root)


def test_bids_export_adds_a_second_participant_but_never_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "bids"
    export_session(make_session(tmp_path / "a.h5", participant="P001"), "bids", root)
    export_session(make_session(tmp_path / "b.h5", participant="P002"), "bids", root)
    assert (root / "sub-P002" / "eeg").is_dir()
    participants = (root / "participants.tsv").read_text()
    assert "sub-P001" in participants and "sub-P002" in participants
    from data_schema.errors import SessionExistsError

    with pytest.raises(SessionExistsError):
        export_session(tmp_path / "a.h5", "bids", root)


def test_brainflow_export_replays_through_the_playback_board(
    session_path: Path, tmp_path: Path
) -> None:
    from brainflow.data_filter import DataFilter

    from drivers.brainflow_source import BrainFlowSource

    out = tmp_path / "session_brainflow.csv"
    files = export_session(session_path, "brainflow", out)
    original = read_session(session_path)
    n = original.eeg.n_samples

    # The file itself: BrainFlow's reader gives the EEG rows, UNIX timestamps and markers.
    table = DataFilter.read_file(str(out))
    assert table.shape == (32, n)  # the synthetic board's row layout
    np.testing.assert_allclose(table[1:5].T, original.eeg.data, atol=1e-6)
    np.testing.assert_allclose(table[30], original.eeg.timestamps + 1.7e9, atol=1e-6)
    legend = json.loads(files[1].read_text())
    marker_idx = np.flatnonzero(table[31])
    assert list(marker_idx) == [125, 250, 375]
    texts = [legend.get(f"{v:g}", f"marker/{v:g}") for v in table[31, marker_idx]]
    assert texts == [annotation_description(e) for e in original.events]

    # Replayed by BrainFlow's playback-file board as if it were the synthetic board.
    source = BrainFlowSource("playback_file", {"file": str(out), "master_board": "-1"})
    source.start()
    try:
        deadline = time.monotonic() + 20
        while source.buffer.count < n and time.monotonic() < deadline:
            time.sleep(0.1)
        data, _, _, lost = source.buffer.read_since(0)
    finally:
        source.stop()
    assert lost == 0
    assert data.shape[0] >= n
    np.testing.assert_allclose(data[:n, :4], original.eeg.data, atol=1e-5)


def test_brainflow_export_refuses_more_channels_than_the_board_has(tmp_path: Path) -> None:
    from data_schema.errors import SessionFileError

    path = make_session(tmp_path / "wide.h5", n_channels=8)
    with pytest.raises(SessionFileError, match="master-board"):
        export_session(path, "brainflow", tmp_path / "x.csv", master_board="ganglion")


def test_export_of_an_imported_xdf(shared_data: Path, tmp_path: Path) -> None:
    imported = tmp_path / "muse.h5"
    import_recording(shared_data / "markersPlusEKG.xdf", imported, participant_id="P003")
    out = tmp_path / "muse_raw.fif"
    export_session(imported, "fif", out)
    raw = load_recording(out)
    assert raw.streams["eeg"].n_samples == 5620
    assert len(raw.events) == 29


def test_eeglab_set_written_by_mne_imports_with_samples_and_events(
    session_path: Path, tmp_path: Path
) -> None:
    import mne

    raw = read_session(session_path).to_raw()
    out = tmp_path / "x.set"
    mne.export.export_raw(out, raw, fmt="eeglab", verbose="error")
    session = load_recording(out)
    np.testing.assert_allclose(session.eeg.data, _volts(session_path), rtol=2e-6, atol=1e-12)
    assert [e.label for e in session.events] == list(raw.annotations.description)
    assert [round(e.timestamp * 250) for e in session.events] == [125, 250, 375]
