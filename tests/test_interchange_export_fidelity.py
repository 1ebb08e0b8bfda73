"""Export fidelity (issue 9): per-channel EDF ranges, exact trigger codes, no silent padding,
clear refusals, BrainFlow microvolts and markers on a shared sample."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from bids_check import assert_bids_valid

from data_schema.errors import RecallLabError
from data_schema.exporters import export_session
from data_schema.types import Event, StreamInfo
from data_schema.writer import SessionWriter


def _write(path: Path, data: np.ndarray, info: StreamInfo, ts: np.ndarray, events=()) -> Path:
    with SessionWriter(path, participant_id="P007", protocol="test") as w:
        w.add_stream("eeg", info, clock={"clock": "lsl"})
        w.append("eeg", data.astype(np.float32), ts)
        w.add_events(events)
    return path


def _mixed_session(path: Path, n: int = 2464, rate: float = 250.0) -> Path:
    """A quiet channel (about 10 uV) beside a loud one (about 5 mV), and a trigger channel."""
    t = np.arange(n) / rate
    data = np.zeros((n, 3))
    data[:, 0] = 10.0 * np.sin(2 * np.pi * 7 * t)
    data[:, 1] = 5000.0 * np.sin(2 * np.pi * 3 * t) + 30.0 * np.sin(2 * np.pi * 11 * t)
    data[::100, 2] = 4096
    data[50::100, 2] = 1
    info = StreamInfo(
        "eeg",
        ["Fz", "EMG", "STATUS"],
        ["eeg", "eeg", "stim"],
        ["uV", "uV", "counts"],
        rate,
        "EEG",
        "test",
    )
    return _write(path, data, info, 1000.0 + t)


def test_edf_keeps_each_channel_within_its_own_step_and_every_sample(tmp_path: Path) -> None:
    import edfio

    src = _mixed_session(tmp_path / "s.h5")
    out = tmp_path / "x.edf"
    export_session(src, "edf", out)
    edf = edfio.read_edf(out)
    from data_schema.reader import read_session

    stored = read_session(src).eeg.data.astype(np.float64)
    by_label = {s.label: s for s in edf.signals}
    for col, name in enumerate(["Fz", "EMG"]):
        sig = by_label[name]
        assert sig.data.size == 2464, f"{name}: {sig.data.size} samples, padded"
        lo, hi = stored[:, col].min(), stored[:, col].max()
        step = (hi - lo) / 65535
        err = np.max(np.abs(sig.data - stored[:, col]))
        # One step of the channel's own range (the header may round that range outwards by
        # a hair, hence the 1 % slack).
        assert err <= 1.01 * step, f"{name}: error {err:.3g} uV > step {step:.3g} uV"
    status = by_label["STATUS"].data
    assert status.size == 2464
    np.testing.assert_array_equal(status, stored[:, 2])
    assert status.max() == 4096


def test_edf_refuses_an_irregular_stream_in_one_clear_line(tmp_path: Path) -> None:
    n = 300
    rng = np.random.default_rng(1)
    ts = 1000.0 + np.cumsum(rng.uniform(0.001, 0.02, n))
    info = StreamInfo("eeg", ["Fz", "Cz"], ["eeg", "eeg"], ["uV", "uV"], 0.0, "EEG", "test")
    src = _write(tmp_path / "s.h5", rng.standard_normal((n, 2)) * 20, info, ts)
    with pytest.raises(RecallLabError, match=r"irregular rate.*fif or brainflow") as exc:
        export_session(src, "edf", tmp_path / "x.edf")
    assert "\n" not in str(exc.value)


def test_brainflow_writes_volts_as_microvolts_and_says_what_it_does_with_shared_samples(
    tmp_path: Path,
) -> None:
    from brainflow.board_shim import BoardIds, BoardShim
    from brainflow.data_filter import DataFilter

    n, rate = 500, 250.0
    t = np.arange(n) / rate
    volts = 1e-6 * (np.arange(n)[:, None] * 0.25 + np.zeros((1, 2)))  # 0.25 uV steps
    info = StreamInfo("eeg", ["Fz", "Cz"], ["eeg", "eeg"], ["V", "V"], rate, "EEG", "test")
    ev = [Event(1001.0, "brainflow", "marker", "5"), Event(1001.0, "brainflow", "marker", "6")]
    src = _write(tmp_path / "s.h5", volts, info, 1000.0 + t, ev)
    out = tmp_path / "x.csv"
    said: list[str] = []
    export_session(src, "brainflow", out, progress=said.append)
    table = DataFilter.read_file(str(out))
    board = BoardIds.SYNTHETIC_BOARD.value
    eeg = table[BoardShim.get_eeg_channels(board)[:2]]
    np.testing.assert_allclose(eeg.T, volts.astype(np.float32) * 1e6, atol=1e-3)
    markers = table[BoardShim.get_marker_channel(board)]
    assert sorted(markers[markers != 0]) == [5, 6]
    assert any("shared a sample" in m for m in said), said


def _session_with_a_break(path: Path, rate: float = 250.0) -> Path:
    """2 s, a 295 s break (e.g. a clock reset), 2 s; first sample at a known UTC time."""
    n = 500
    t = np.arange(n) / rate
    ts = np.concatenate([100.0 + t, 100.0 + 2.0 + 295.0 + t])
    data = np.random.default_rng(3).standard_normal((2 * n, 2)) * 20
    info = StreamInfo("eeg", ["Fz", "Cz"], ["eeg", "eeg"], ["uV", "uV"], rate, "EEG", "test")
    with SessionWriter(path, participant_id="P007", protocol="test") as w:
        w.add_stream(
            "eeg", info, clock={"clock": "lsl", "first_sample_utc": "2021-03-04T05:06:07+00:00"}
        )
        w.append("eeg", data.astype(np.float32), ts)
        w.add_events([Event(100.0 + 2.0 + 295.0 + 1.0, "protocol", "phase_start", "x")])
    return path


@pytest.mark.parametrize(
    ("fmt", "name"), [("fif", "x_raw.fif"), ("edf", "x.edf"), ("brainvision", "x.vhdr")]
)
def test_breaks_are_marked_and_the_recording_keeps_its_own_date(
    tmp_path: Path, fmt: str, name: str
) -> None:
    import mne

    src = _session_with_a_break(tmp_path / "s.h5")
    said: list[str] = []
    export_session(src, fmt, tmp_path / name, progress=said.append)
    raw = mne.io.read_raw(tmp_path / name, verbose="error")
    assert raw.info["meas_date"] == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    # BrainVision markers come back as "Comment/<description>" (pybv's marker type).
    skips = [a for a in raw.annotations if "BAD_ACQ_SKIP" in a["description"]]
    assert len(skips) == 1, list(raw.annotations.description)
    assert "295.000" in skips[0]["description"]
    assert abs(skips[0]["onset"] - 2.0) < 1e-3
    # The event after the break stays on its own sample: 2 s of data + 1 s.
    phase = [a for a in raw.annotations if "phase_start" in a["description"]]
    assert abs(phase[0]["onset"] - 3.0) < 1e-2
    assert any("break" in m for m in said)
    if fmt == "brainvision":  # and the discontinuity as BrainVision tools know it
        segments = [a for a in raw.annotations if a["description"].startswith("New Segment")]
        assert [round(a["onset"], 3) for a in segments][-1] == round(skips[0]["onset"], 3)


def test_bids_sidecars_say_what_the_source_said_and_pass_the_validator(tmp_path: Path) -> None:
    n, rate = 2000, 1000.0
    t = np.arange(n) / rate
    data = np.random.default_rng(5).standard_normal((n, 3)) * 20
    data[:, 2] = 0
    data[::250, 2] = 4096
    info = StreamInfo(
        "eeg",
        ["TP9", "AF7", "STATUS"],
        ["eeg", "eeg", "stim"],
        ["uV", "uV", "counts"],
        rate,
        "EEG",
        "test",
        description={"manufacturer": "InteraXon", "filters": {"highpass": 0.1, "lowpass": 250}},
    )
    ts = np.concatenate([10.0 + t[:1000], 10.0 + 1.0 + 60.0 + t[:1000]])
    src = _write(tmp_path / "s.h5", data, info, ts)
    root = tmp_path / "bids"
    export_session(src, "bids", root, line_freq=50.0)
    eeg_dir = root / "sub-P007" / "eeg"
    side = json.loads((eeg_dir / "sub-P007_task-recall_eeg.json").read_text())
    assert side["Manufacturer"] == "InteraXon"
    assert side["HardwareFilters"] == {"SourceFilters": {"HighpassHz": 0.1, "LowpassHz": 250.0}}
    # RecordingDuration is the sampled duration (2 s), not the 62 s span.
    assert abs(side["RecordingDuration"] - 2.0) < 0.01
    rows = [
        r.split("\t")
        for r in (eeg_dir / "sub-P007_task-recall_channels.tsv").read_text().splitlines()
    ]
    col = {c: i for i, c in enumerate(rows[0])}
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["STATUS"][col["units"]] == "n/a"
    assert by_name["TP9"][col["high_cutoff"]] == "250"
    assert by_name["TP9"][col["low_cutoff"]] == "0.1"
    events = (eeg_dir / "sub-P007_task-recall_events.tsv").read_text()
    assert "BAD_ACQ_SKIP" in events
    assert_bids_valid(root)


def test_bids_refuses_a_stream_without_eeg_in_one_clear_line(tmp_path: Path) -> None:
    n, rate = 500, 50.0
    info = StreamInfo("eeg", ["AccX", "AccY"], ["misc", "misc"], ["g", "g"], rate, "ACC", "test")
    src = _write(tmp_path / "s.h5", np.zeros((n, 2)), info, 10.0 + np.arange(n) / rate)
    with pytest.raises(RecallLabError, match=r"no EEG channels.*fif or edf") as exc:
        export_session(src, "bids", tmp_path / "bids")
    assert "\n" not in str(exc.value)


def test_an_xdf_import_is_dated_from_its_header_never_from_the_import(
    shared_data: Path, tmp_path: Path
) -> None:
    import mne

    from data_schema.importers import import_recording

    h5 = tmp_path / "muse.h5"
    import_recording(shared_data / "muselsl2_sub-P001_ses-S001_eeg.xdf", h5, participant_id="P1")
    export_session(h5, "fif", tmp_path / "x_raw.fif")
    date = mne.io.read_raw(tmp_path / "x_raw.fif", verbose="error").info["meas_date"]
    # The file header says 2023-10-25T14:39:15+0100 (LabRecorder's start).
    assert date is not None and abs(date.timestamp() - 1698241155.0) < 2.0
    export_session(h5, "bids", tmp_path / "bids")
    assert (tmp_path / "bids" / "sub-P1" / "eeg").is_dir()


def test_an_import_without_a_recording_time_is_not_dated_with_the_import_time(
    shared_data: Path, tmp_path: Path
) -> None:
    import mne

    from data_schema.importers import import_recording

    h5 = tmp_path / "minimal.h5"
    import_recording(shared_data / "xdf_minimal.xdf", h5, participant_id="P1")  # no datetime
    said: list[str] = []
    export_session(h5, "fif", tmp_path / "x_raw.fif", progress=said.append)
    assert mne.io.read_raw(tmp_path / "x_raw.fif", verbose="error").info["meas_date"] is None
    assert any("no recording date" in m for m in said)


def test_edf_128_channels_at_2_khz_from_5_uv_to_20_mv_each_within_its_own_step(
    tmp_path: Path,
) -> None:
    """The reported case: a shared range per type put a quiet channel 3 % of its range off."""
    import edfio

    n, rate = 4000, 2000.0
    amp = np.geomspace(5, 20000, 128)
    data = np.random.default_rng(0).standard_normal((n, 128)) * amp
    names = [f"E{i}" for i in range(128)]
    info = StreamInfo("eeg", names, ["eeg"] * 128, ["uV"] * 128, rate, "EEG", "test")
    src = _write(tmp_path / "s.h5", data, info, 10.0 + np.arange(n) / rate)
    export_session(src, "edf", tmp_path / "x.edf")
    from data_schema.reader import read_session

    stored = read_session(src).eeg.data.astype(np.float64)
    for c, sig in enumerate(edfio.read_edf(tmp_path / "x.edf").signals):
        step = np.ptp(stored[:, c]) / 65535
        assert sig.data.size == n
        assert np.abs(sig.data - stored[:, c]).max() <= 1.01 * step, sig.label
