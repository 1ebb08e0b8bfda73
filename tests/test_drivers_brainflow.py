"""BrainFlow sources against BrainFlow's own synthetic and playback-file boards."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from data_schema.errors import SourceError
from data_schema.reader import read_session
from data_schema.recorder import Recorder
from data_schema.writer import SessionWriter
from drivers.brainflow_source import BrainFlowSource, _brainflow, list_boards, resolve_board_id
from drivers.spec import parse_source

SYNTHETIC = -1
FIRST_UNIX = 1_600_000_000.0


def write_counting_recording(path: Path, n: int, markers: dict[int, float]) -> float:
    """A BrainFlow CSV as the synthetic board would record it, with a counting first EEG row.

    Returns the sampling rate. Written by BrainFlow's own ``DataFilter.write_file``.
    """
    from brainflow.data_filter import DataFilter

    shim = _brainflow().BoardShim
    rate = shim.get_sampling_rate(SYNTHETIC)
    eeg = shim.get_eeg_channels(SYNTHETIC)
    data = np.zeros((shim.get_num_rows(SYNTHETIC), n))
    data[eeg[0]] = np.arange(n)
    data[eeg[1]] = np.sin(np.arange(n) / 5.0) * 50.0
    data[shim.get_timestamp_channel(SYNTHETIC)] = FIRST_UNIX + np.arange(n) / rate
    for row, value in markers.items():
        data[shim.get_marker_channel(SYNTHETIC), row] = value
    DataFilter.write_file(data, str(path), "w")
    return float(rate)


def _record_until_finished(source, path: Path, timeout: float) -> tuple[Recorder, float]:
    """Record until the source has played everything; return the recorder and start time."""
    from drivers.clock import local_clock

    recorder = Recorder(SessionWriter(path, participant_id="P001"), {"eeg": source})
    started = local_clock()
    recorder.start()
    end = time.monotonic() + timeout
    while not source.finished and time.monotonic() < end:
        time.sleep(0.05)
    recorder.stop()
    return recorder, started


@pytest.mark.timeout(60)
def test_playback_file_reaches_the_file_exactly_with_its_recorded_times(tmp_path):
    n = 500
    markers = {0: 5.0, 123: 1.0, 377: 2.0}
    csv = tmp_path / "recorded.csv"
    rate = write_counting_recording(csv, n, markers)
    source = parse_source(f"brainflow:playback_file?file={csv}&master_board=synthetic")
    recorder, started = _record_until_finished(source, tmp_path / "playback.h5", timeout=15.0)
    assert source.finished, "the source ends when the file has been played"
    assert recorder.status().samples_lost == {"eeg": 0}

    session = read_session(tmp_path / "playback.h5")
    eeg = session.streams["eeg"]
    np.testing.assert_array_equal(eeg.data[:, 0], np.arange(n))
    np.testing.assert_allclose(eeg.data[:, 1], np.sin(np.arange(n) / 5.0) * 50.0, atol=1e-4)
    # The recorded sample times survive: shifted as a whole onto the LSL clock, intervals
    # exactly as recorded (BrainFlow's CSV keeps microseconds).
    mapping = eeg.clock_mapping
    assert mapping["from"] == "recorded_unix"
    assert mapping["first_recorded_unix"] == FIRST_UNIX
    original = eeg.timestamps - mapping["offset"]
    np.testing.assert_allclose(original, FIRST_UNIX + np.arange(n) / rate, atol=2e-6)
    # ...and land when the playback ran, on this machine's LSL clock.
    assert started < eeg.timestamps[0] < started + 2.0
    got = session.events_where(source="brainflow", label="marker")
    assert [e.value for e in got] == ["5", "1", "2"]
    np.testing.assert_allclose(
        [e.timestamp for e in got], [eeg.timestamps[r] for r in markers], atol=1e-9
    )
    assert not session.events_where(label="gap_start")


@pytest.mark.timeout(30)
def test_playback_loop_plays_the_file_again_with_fresh_increasing_times(tmp_path):
    n = 60
    csv = tmp_path / "short.csv"
    write_counting_recording(csv, n, {10: 4.0})
    source = BrainFlowSource(
        "playback_file", {"file": str(csv), "master_board": "-1", "loop": "true"}
    )
    with source:
        time.sleep(1.2)  # 0.24 s per pass at 250 Hz: several passes
    data, ts, _, lost = source.buffer.read_since(0)
    assert lost == 0 and len(ts) > 3 * n
    np.testing.assert_array_equal(data[:, 0], np.arange(len(ts)) % n)
    assert np.all(np.diff(ts) > 0)
    assert source.clock_mapping["from"] == "unix"
    events = [e for e in source.events.read_since(0)[0] if e.label == "marker"]
    passes = len(ts) // n + (len(ts) % n > 10)
    assert [e.value for e in events] == ["4"] * passes
    np.testing.assert_allclose(
        [e.timestamp for e in events], ts[10 + n * np.arange(passes)], atol=1e-9
    )
    assert not source.finished


@pytest.mark.timeout(30)
def test_synthetic_board_records_at_its_rate_on_the_lsl_clock(tmp_path):
    from drivers.clock import local_clock

    source = parse_source("synthetic")
    path = tmp_path / "synthetic.h5"
    recorder = Recorder(SessionWriter(path, participant_id="P001"), {"eeg": source})
    t0 = local_clock()
    recorder.start()
    time.sleep(2.5)
    recorder.stop()
    t1 = local_clock()

    eeg = read_session(path).streams["eeg"]
    assert eeg.info.nominal_rate == 250.0
    assert eeg.info.source == "brainflow:Synthetic"
    assert eeg.n_samples >= 1.5 * 250
    assert eeg.effective_rate == pytest.approx(250.0, rel=0.05)
    assert np.all(np.diff(eeg.timestamps) > 0)
    assert t0 - 0.5 < eeg.timestamps[0] and eeg.timestamps[-1] < t1
    mapping = eeg.clock_mapping
    assert mapping["from"] == "unix" and mapping["uncertainty"] < 1e-2
    assert mapping["offset"] == pytest.approx(local_clock() - time.time(), abs=0.05)
    assert eeg.info.units == ["uV"] * eeg.info.n_channels
    assert "accel_channels" in eeg.info.description["board_description"]


@pytest.mark.parametrize(
    ("board", "params", "expected"),
    [
        ("cyton", {"serial_port": "/dev/ttyNONEXIST"}, "could not open its port"),
        ("cyton", {}, "it needs serial_port="),
        ("nosuchboard", {}, "unknown BrainFlow board 'nosuchboard'"),
        ("12345", {}, "no board with id 12345"),
        ("synthetic", {"serial_prot": "x"}, "unknown BrainFlow parameter 'serial_prot'"),
        ("synthetic", {"ip_port": "eighty"}, "ip_port='eighty' must be a whole number"),
        ("synthetic", {"loop": "true"}, "option of the playback_file board only"),
        ("playback_file", {"file": "x.csv"}, "needs ?master_board="),
        ("playback_file", {"file": "/no/such.csv", "master_board": "-1"}, "not found"),
        ("playback_file", {"file": "FILE", "master_board": "-1", "loop": "sure"}, "true/false"),
        (
            "playback_file",
            {"file": "FILE", "master_board": "-1", "loop": "1", "timestamps": "recorded"},
            "cannot keep the recorded timestamps",
        ),
    ],
)
def test_boards_that_cannot_connect_give_one_clear_line(tmp_path, board, params, expected):
    csv = tmp_path / "rec.csv"
    write_counting_recording(csv, 10, {})
    params = {k: (str(csv) if v == "FILE" else v) for k, v in params.items()}
    source = BrainFlowSource(board, params)
    with pytest.raises(SourceError) as err:
        source.open()
    assert expected in str(err.value)
    assert "\n" not in str(err.value)
    assert source.info is None


def test_a_file_that_is_not_a_brainflow_recording_is_refused(tmp_path):
    csv = tmp_path / "notes.csv"
    csv.write_text("this is not\ta recording\n")
    with pytest.raises(SourceError, match="not a BrainFlow recording"):
        BrainFlowSource("playback_file", {"file": str(csv), "master_board": "-1"}).open()


def test_board_list_names_ids_rates_and_connection_needs():
    boards = {b["name"]: b for b in list_boards()}
    assert boards["synthetic"]["id"] == -1 and boards["synthetic"]["rate"] == 250
    assert boards["cyton"]["eeg_channels"] == 8
    assert "serial_port" in boards["cyton"]["needs"]
    assert "master_board" in boards["playback_file"]["needs"]
    assert "no_board" not in boards
    for name, row in boards.items():
        assert resolve_board_id(name) == row["id"]
        assert resolve_board_id(str(row["id"])) == row["id"]
    assert resolve_board_id("CYTON_DAISY_BOARD") == boards["cyton_daisy"]["id"]
