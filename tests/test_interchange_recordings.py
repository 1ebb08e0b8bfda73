"""Foreign recordings: loading, import and replay reproduce their samples and events exactly.

The reference for each file is an independent read: ``pyxdf.load_xdf`` for XDF, Python's csv
module for the OpenBCI GUI text file.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from data_schema.importers import import_recording
from data_schema.reader import read_session
from data_schema.recordings import load_recording
from drivers.replay import ReplaySource

XDF_FILES = ["markersPlusEKG.xdf", "muselsl2_sub-P001_ses-S001_eeg.xdf", "xdf_minimal.xdf"]
OPENBCI = "OpenBCI_GUI-v6-blinks-jawClench-alpha.txt"


def xdf_reference(path: Path) -> tuple[dict[str, dict], list[tuple[float, str]]]:
    """Numeric streams by (name, type) and marker (timestamp, text) pairs, read by pyxdf."""
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path))
    numeric, markers = {}, []
    for s in streams:
        info = s["info"]
        if info["channel_format"][0] == "string" or info["type"][0].lower() == "markers":
            for v, t in zip(s["time_series"], s["time_stamps"]):
                value = v[0]
                markers.append((float(t), str(int(value)) if not isinstance(value, str) else value))
        else:
            numeric[(info["name"][0], info["type"][0])] = s
    return numeric, sorted(markers)


def openbci_reference(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EXG samples, UNIX timestamps (s) and marker column, parsed with the csv module."""
    with open(path, newline="") as f:
        lines = [ln for ln in f if not ln.startswith("%")]
    rows = list(csv.reader(lines))
    header = [c.strip() for c in rows[0]]
    exg = [i for i, c in enumerate(header) if c.startswith("EXG Channel")]
    t_col, m_col = header.index("Timestamp"), header.index("Marker Channel")
    body = rows[1:]
    data = np.array([[float(r[i]) for i in exg] for r in body], dtype=np.float32)
    ts = np.array([float(r[t_col]) for r in body]) / 1000.0
    marks = np.array([float(r[m_col]) for r in body])
    return data, ts, marks


def check_against_reference(path: Path, session) -> None:
    """Every stream's samples and timestamps and every marker equal the reference read."""
    if path.suffix == ".xdf":
        numeric, markers = xdf_reference(path)
        assert len(session.streams) == len(numeric)
        by_origin = {
            (s.info.description["lsl_name"], s.info.description["lsl_type"]): s
            for s in session.streams.values()
        }
        for key, ref in numeric.items():
            got = by_origin[key]
            ref_data = np.asarray(ref["time_series"], dtype=np.float32).reshape(got.data.shape)
            np.testing.assert_array_equal(got.data, ref_data)
            np.testing.assert_array_equal(got.timestamps, ref["time_stamps"])
        assert [(e.timestamp, e.value) for e in session.events] == markers
    else:
        data, ts, marks = openbci_reference(path)
        np.testing.assert_array_equal(session.streams["eeg"].data, data)
        np.testing.assert_allclose(session.streams["eeg"].timestamps, ts, rtol=0, atol=1e-6)
        assert len(session.events) == np.count_nonzero(marks)


@pytest.mark.parametrize("name", [*XDF_FILES, OPENBCI])
def test_load_recording_reproduces_the_file(shared_data: Path, name: str) -> None:
    path = shared_data / name
    session = load_recording(path)
    check_against_reference(path, session)
    eeg = session.streams["eeg"]
    assert eeg.info.stream_type == "EEG"
    assert eeg.info.nominal_rate > 0


def test_xdf_keeps_labels_units_and_every_stream(shared_data: Path) -> None:
    session = load_recording(shared_data / "muselsl2_sub-P001_ses-S001_eeg.xdf")
    eeg = session.streams["eeg"]
    assert eeg.info.channel_names == ["TP9", "AF7", "AF8", "TP10", "AUX_RIGHT"]
    assert eeg.info.units == ["uV"] * 5
    assert eeg.info.nominal_rate == 256.0
    # Accelerometer, gyroscope and the (empty) PPG stream are kept beside the EEG.
    kinds = sorted(s.info.stream_type for n, s in session.streams.items() if n != "eeg")
    assert kinds == ["ACC", "GYRO", "PPG"]


def test_xdf_marker_stream_becomes_events(shared_data: Path) -> None:
    session = load_recording(shared_data / "markersPlusEKG.xdf")
    assert len(session.events) == 29
    assert {e.source for e in session.events} == {"lsl:Blinky"}
    assert all(e.label == "marker" and e.value.lstrip("-").isdigit() for e in session.events)


@pytest.mark.parametrize("name", [*XDF_FILES, OPENBCI])
def test_import_writes_a_session_with_the_same_samples_and_events(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    path = shared_data / name
    out = tmp_path / "imported.h5"
    import_recording(path, out, participant_id="P042")
    session = read_session(out)
    assert session.attrs["imported_from"] == name
    assert session.participant_id == "P042"
    assert session.clean_close
    check_against_reference(path, session)


def play_all(source: ReplaySource, timeout: float = 60.0):
    """Drain a replay source like the recorder does; returns data, timestamps, events, seconds."""
    source.start()
    started = time.monotonic()
    pos = ev_pos = 0
    chunks, stamps, events = [], [], []
    while time.monotonic() - started < timeout:
        done = source.finished or not source.running
        data, ts, pos, lost = source.buffer.read_since(pos)
        assert lost == 0
        chunks.append(data)
        stamps.append(ts)
        new, ev_pos = source.events.read_since(ev_pos)
        events += new
        if done:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    source.stop()
    assert source.error is None
    assert source.finished, "replay did not finish"
    return np.concatenate(chunks), np.concatenate(stamps), events, elapsed


@pytest.mark.parametrize("name", [*XDF_FILES, OPENBCI])
def test_replay_delivers_every_sample_and_event_once(shared_data: Path, name: str) -> None:
    path = shared_data / name
    original = load_recording(path)
    source = ReplaySource(path, speed=0)
    data, ts, events, _ = play_all(source)
    eeg = original.streams["eeg"]
    np.testing.assert_array_equal(data, eeg.data)
    offset = source.clock_mapping["offset"]
    # Timestamps are the recording's, moved by one offset onto the current LSL clock.
    np.testing.assert_allclose(ts - offset, eeg.timestamps, rtol=0, atol=1e-8)
    assert [(e.source, e.label, e.value) for e in events] == [
        (e.source, e.label, e.value) for e in original.events
    ]
    np.testing.assert_allclose(
        [e.timestamp - offset for e in events],
        [e.timestamp for e in original.events],
        rtol=0,
        atol=1e-8,
    )
