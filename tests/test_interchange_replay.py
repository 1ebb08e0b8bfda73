"""Replay pacing, LSL outlets seen by a real pylsl inlet, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pylsl
import pytest
from test_interchange_helpers import make_session
from test_interchange_recordings import play_all

from app.cli import main
from data_schema.reader import annotation_description, read_session
from data_schema.types import Event, StreamInfo
from drivers.outlets import DataOutlet, MarkerOutlet
from drivers.replay import ReplaySource

REPO = Path(__file__).resolve().parents[1]


def test_replay_at_5x_takes_a_fifth_of_the_time_and_max_is_much_faster(tmp_path: Path) -> None:
    path = make_session(tmp_path / "five.h5", seconds=5.0)
    data, _, events, elapsed = play_all(ReplaySource(path, speed=5))
    original = read_session(path).eeg
    np.testing.assert_array_equal(data, original.data)
    assert len(events) == 3
    assert 0.9 <= elapsed < 3.5, elapsed  # ~1 s; generous upper bound for a busy machine
    _, _, _, fast = play_all(ReplaySource(path, speed=0))
    assert fast < elapsed / 3, (fast, elapsed)


def test_real_time_replay_keeps_pace_with_the_lsl_clock(tmp_path: Path) -> None:
    path = make_session(tmp_path / "rt.h5", seconds=1.5)
    source = ReplaySource(path, speed=1)
    source.start()
    lags = []
    pos = 0
    while True:
        done = source.finished
        _, ts, pos, _ = source.buffer.read_since(pos)
        if len(ts):
            lags.append(pylsl.local_clock() - ts[-1])  # how late the newest sample is
        if done:
            break
        time.sleep(0.02)
    source.stop()
    assert pos == 375
    # Samples arrive when their timestamp comes (never early), within a poll or two.
    assert min(lags) >= -1e-3
    assert np.median(lags) < 0.25


def test_loop_continues_timestamps_without_gaps_or_repeats(tmp_path: Path) -> None:
    path = make_session(tmp_path / "loop.h5", seconds=0.4, event_times=(0.1,))
    source = ReplaySource(path, speed=4, loop=True)
    source.start()
    deadline = time.monotonic() + 10
    while source.buffer.count < 250 and time.monotonic() < deadline:
        time.sleep(0.02)
    source.stop()
    data, ts, _, lost = source.buffer.read_since(0)
    assert lost == 0 and len(ts) >= 250
    np.testing.assert_array_equal(data[:250, 0], np.arange(250) % 100)
    np.testing.assert_allclose(np.diff(ts[:250]), 1 / 250, atol=1e-9)
    events, _ = source.events.read_since(0)
    assert len(events) >= 2
    assert events[1].timestamp - events[0].timestamp == pytest.approx(0.4, abs=1e-9)


def _resolve(prop: str, value: str, timeout: float = 15.0):
    streams = pylsl.resolve_byprop(prop, value, timeout=timeout)
    assert streams, f"no LSL stream with {prop}={value}"
    return streams[0]


def test_marker_outlet_passes_event_timestamps(unique_id: str) -> None:
    with MarkerOutlet(f"markers-{unique_id}", source_id=unique_id) as outlet:
        inlet = pylsl.StreamInlet(_resolve("source_id", unique_id))
        inlet.open_stream(timeout=10)
        assert inlet.info().type() == "Markers"
        time.sleep(0.3)
        now = pylsl.local_clock()
        sent = [
            Event(now - 0.25, "keyboard", "key_down", json.dumps({"key": "1"})),
            Event(now - 0.10, "protocol", "phase_start", json.dumps({"phase": "p1"})),
        ]
        for e in sent:
            outlet.push_event(e)
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            sample, ts = inlet.pull_sample(timeout=0.5)
            if sample is not None:
                got.append((sample[0], ts))
    assert [g[0] for g in got] == [annotation_description(e) for e in sent]
    assert [g[1] for g in got] == pytest.approx([e.timestamp for e in sent], abs=1e-6)


def test_data_outlet_describes_channels_and_passes_timestamps(unique_id: str) -> None:
    info = StreamInfo("eeg", ["Fz", "Cz"], ["eeg", "eeg"], ["uV", "uV"], 100.0, "EEG", "test")
    with DataOutlet(info, source_id=unique_id, name=f"eeg-{unique_id}") as outlet:
        lsl_info = _resolve("source_id", unique_id)
        inlet = pylsl.StreamInlet(lsl_info)
        inlet.open_stream(timeout=10)
        full = inlet.info(timeout=5)
        ch = full.desc().child("channels").child("channel")
        labels, units = [], []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            units.append(ch.child_value("unit"))
            ch = ch.next_sibling()
        assert (full.type(), full.nominal_srate()) == ("EEG", 100.0)
        assert labels == ["Fz", "Cz"] and units == ["microvolts", "microvolts"]
        time.sleep(0.3)
        ts = pylsl.local_clock() - 1.0 + np.arange(50) / 100.0
        data = np.stack([np.arange(50), -np.arange(50)], axis=1).astype(np.float32)
        outlet.push_chunk(data, ts)
        got, stamps = [], []
        deadline = time.monotonic() + 10
        while len(got) < 50 and time.monotonic() < deadline:
            chunk, t = inlet.pull_chunk(timeout=0.5)
            got += chunk
            stamps += t
    np.testing.assert_array_equal(np.array(got), data)
    np.testing.assert_allclose(stamps, ts, atol=1e-6)


def test_replay_command_publishes_a_live_amplifier_on_lsl(tmp_path: Path, unique_id: str) -> None:
    path = make_session(tmp_path / "lsl.h5", seconds=2.0, event_times=(0.5, 1.0, 1.5))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = ["replay", str(path), "--lsl", "--loop", "--speed", "2", "--name", unique_id]
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", *command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        data_inlet = pylsl.StreamInlet(_resolve("name", unique_id))
        marker_inlet = pylsl.StreamInlet(_resolve("name", f"{unique_id}-markers"))
        data_inlet.open_stream(timeout=10)
        marker_inlet.open_stream(timeout=10)
        full = data_inlet.info(timeout=5)
        ch = full.desc().child("channels").child("channel")
        labels = []
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        samples, stamps, markers = [], [], []
        deadline = time.monotonic() + 20
        while (len(markers) < 4 or len(samples) < 600) and time.monotonic() < deadline:
            chunk, t = data_inlet.pull_chunk(timeout=0.1)
            samples += chunk
            stamps += t
            m, mt = marker_inlet.pull_chunk(timeout=0.0)
            markers += [(x[0], y) for x, y in zip(m, mt)]
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped by Ctrl-C" in out
    assert (full.type(), full.channel_count(), full.nominal_srate()) == ("EEG", 4, 250.0)
    assert labels == ["Fz", "Cz", "Pz", "Oz"]
    counter = np.array(samples)[:, 0]
    # Consecutive samples (wrapping at the loop): nothing lost or repeated on the way.
    assert np.all((np.diff(counter) == 1) | ((counter[:-1] == 499) & (counter[1:] == 0)))
    original = read_session(path)
    texts = {annotation_description(e) for e in original.events}
    assert len(markers) >= 4 and {m[0] for m in markers} <= texts
    # A marker's timestamp equals that of the sample it belongs to (same pass).
    stamps = np.array(stamps)
    for text, t in markers:
        k = [annotation_description(e) for e in original.events].index(text)
        sample_no = round((original.events[k].timestamp - 5000.0) * 250)
        hits = np.flatnonzero(counter == sample_no)
        if len(hits):
            assert np.min(np.abs(stamps[hits] - t)) < 1e-4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["replay", "{tmp}/missing.h5"], "no such file"),
        (["replay", "{tmp}/notes.xyz"], "unknown recording format"),
        (["import", "{tmp}/empty.edf", "--out", "{tmp}/o.h5", "--participant", "P001"], "empty"),
        (
            ["import", "{tmp}/corrupt.edf", "--out", "{tmp}/o.h5", "--participant", "P001"],
            "could not be read as EDF",
        ),
        (
            ["import", "{tmp}/session.h5", "--out", "{tmp}/session.h5", "--participant", "P001"],
            "already exists",
        ),
        (
            ["import", "{tmp}/session.h5", "--out", "{tmp}/o.h5", "--participant", "Jane Doe"],
            "pseudonym",
        ),
        (
            ["export", "{tmp}/session.h5", "--format", "edf", "--out", "{tmp}/exists.edf"],
            "already exists",
        ),
        (["export", "{tmp}/session.h5", "--format", "fif", "--out", "{tmp}/x.edf"], "must end"),
        (
            ["export", "{tmp}/corrupt.edf", "--format", "fif", "--out", "{tmp}/y.fif"],
            "could not be read",
        ),
        (
            [
                "export",
                "{tmp}/session.h5",
                "--format",
                "edf",
                "--out",
                "{tmp}/x.edf",
                "--stream",
                "nope",
            ],
            "no stream 'nope'",
        ),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path: Path, capsys, argv, message) -> None:
    make_session(tmp_path / "session.h5")
    (tmp_path / "notes.xyz").write_text("hello")
    (tmp_path / "empty.edf").write_bytes(b"")
    (tmp_path / "corrupt.edf").write_bytes(b"0       garbage that is not an EDF header" * 10)
    (tmp_path / "exists.edf").write_bytes(b"keep me")
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err
    assert (tmp_path / "exists.edf").read_bytes() == b"keep me"


def test_bad_speed_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(make_session(tmp_path / "s.h5")), "--speed", "fast"])
    assert exc.value.code == 2
    assert "not a speed" in capsys.readouterr().err


def test_cli_import_and_export_print_what_they_wrote(tmp_path: Path, capsys) -> None:
    src = make_session(tmp_path / "s.h5")
    assert main(["export", str(src), "--format", "fif", "--out", str(tmp_path / "s_raw.fif")]) == 0
    back = ["import", str(tmp_path / "s_raw.fif"), "--out", str(tmp_path / "b.h5")]
    assert main([*back, "--participant", "P001"]) == 0
    out = capsys.readouterr().out
    assert "wrote fif export" in out and "FIF -> 1 streams" in out and "3 events" in out
    assert main(["replay", str(tmp_path / "b.h5"), "--speed", "max", "--quiet"]) == 0
    assert "500 samples, 3 events" in capsys.readouterr().out
