"""The recorder end to end: every sample and every event reaches the file, in order."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from data_schema.reader import read_session
from data_schema.recorder import Recorder
from data_schema.types import Event, StreamInfo
from data_schema.writer import SessionWriter
from drivers.base import Source
from drivers.clock import local_clock


class CountingSource(Source):
    """A 1 kHz, 4-channel source whose first channel counts samples, delivered in bursts.

    It is paced by the clock like a device, so the recorder sees data arrive while it runs.
    """

    rate = 1000.0

    def _connect(self) -> StreamInfo:
        self._t0 = local_clock()
        self._sent = 0
        names = ["count", "C1", "C2", "C3"]
        return StreamInfo("eeg", names, ["misc", "eeg", "eeg", "eeg"], ["a.u."] + ["uV"] * 3, 1000)

    def _pull(self, max_samples: int):
        due = min(int((local_clock() - self._t0) * self.rate), self._sent + max_samples)
        n = due - self._sent
        if n < 7:  # bursts, as USB and LSL deliver them
            return None
        idx = np.arange(self._sent, due)
        data = np.column_stack([idx, np.sin(idx / 10), np.cos(idx / 10), idx % 7]).astype(
            np.float32
        )
        self._sent = due
        return data, self._t0 + idx / self.rate


def test_every_sample_and_event_reaches_the_file(tmp_path):
    path = tmp_path / "s.h5"
    writer = SessionWriter(path, participant_id="P003", protocol="counting")
    recorder = Recorder(writer, {"eeg": CountingSource()})
    recorder.start()
    sent: list[Event] = []

    def press_keys() -> None:  # another thread, as the GUI's key handler would be
        for i in range(40):
            key = {"key": str(i % 3 + 1), "valence": "neutral", "auto_repeat": False}
            e = Event(local_clock(), "keyboard", "key_down", json.dumps(key))
            sent.append(e)
            recorder.add_event(e)
            time.sleep(0.02)

    t = threading.Thread(target=press_keys)
    t.start()
    t.join()
    time.sleep(0.3)
    recorder.stop()
    status = recorder.status()
    assert recorder.error is None and not recorder.running

    s = read_session(path)
    count = s.eeg.data[:, 0]
    assert len(count) > 1000 and status.samples_written["eeg"] == len(count)
    np.testing.assert_array_equal(count, np.arange(len(count)))  # none lost, none repeated
    assert np.all(np.diff(s.eeg.timestamps) > 0)
    assert s.events_where(source="keyboard") == sent
    assert status.samples_lost == {"eeg": 0} and s.events_where(label="samples_lost") == []
    assert s.clean_close


def test_a_stalled_disk_makes_the_source_wait_instead_of_losing_samples(tmp_path):
    """The file cannot be written for 2.5 s while a 1-s ring buffer would overflow twice:
    the source takes no more than fits and the device keeps the rest until the disk is back.
    Stop comes right after: what the device acquired until then is still written."""
    path = tmp_path / "stall.h5"
    writer = SessionWriter(path, participant_id="P003")
    source = CountingSource(buffer_seconds=1.0)  # 1024 samples at 1 kHz
    recorder = Recorder(writer, {"eeg": source})
    recorder.start()
    time.sleep(0.5)
    with writer._lock:  # a disk that hangs: every write of the recorder waits here
        time.sleep(2.5)
        assert source.buffer.room() < 7  # full (it delivers bursts of 7+), nothing overwritten
    due_at_stop = int((local_clock() - source._t0) * source.rate)
    recorder.stop()

    s = read_session(path)
    count = s.eeg.data[:, 0]
    assert len(count) >= due_at_stop - 10  # a burst of the device may still be under way
    np.testing.assert_array_equal(count, np.arange(len(count)))
    assert recorder.status().samples_lost == {"eeg": 0}
    assert s.events_where(label="samples_lost") == [] and s.events_where(label="gap_start") == []


def test_a_source_that_ignores_the_limit_is_cut_and_the_loss_is_recorded(tmp_path):
    """A driver bug (a chunk larger than the room it was given) never overwrites what the
    recorder holds; the samples that did not fit are counted and marked in the file."""

    class Greedy(CountingSource):
        def _pull(self, max_samples: int):
            return super()._pull(max_samples + 500)

    path = tmp_path / "greedy.h5"
    writer = SessionWriter(path, participant_id="P003")
    source = Greedy(buffer_seconds=1.0)
    recorder = Recorder(writer, {"eeg": source})
    recorder.start()
    time.sleep(0.3)
    with writer._lock:
        time.sleep(2.0)
    time.sleep(0.6)
    recorder.stop()

    s = read_session(path)
    count = s.eeg.data[:, 0]
    lost = recorder.status().samples_lost["eeg"]
    assert lost > 0
    # What is in the file is intact: every jump in the count is a loss that was recorded.
    assert np.all(np.diff(count) >= 1)
    assert int(np.sum(np.diff(count) - 1)) == lost
    marked = sum(int(e.value.split(":")[1]) for e in s.events_where(label="samples_lost"))
    assert marked == lost


class _PacedOutlet:
    """A real LSL outlet pushing 500 Hz in 20 ms chunks, stamped when pushed, until closed."""

    def __init__(self, name: str) -> None:
        import pylsl

        info = pylsl.StreamInfo(name, "EEG", 4, 500.0, pylsl.cf_float32, name)
        self.outlet = pylsl.StreamOutlet(info)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._push, daemon=True)
        self._thread.start()

    def _push(self) -> None:
        t0 = local_clock()
        k = 0
        while not self._stop.is_set():
            due = t0 + (k + 10) / 500.0
            self._stop.wait(max(0.0, due - local_clock()))
            stamps = t0 + (k + np.arange(10)) / 500.0
            self.outlet.push_chunk(np.zeros((10, 4), np.float32), timestamp=stamps.tolist())
            k += 10

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _source(kind: str, name: str):
    from drivers.spec import parse_source

    spec = "synthetic" if kind == "synthetic" else f"lsl:{name}"
    # The recorder's own pull rhythm: twice a second (recall-lab record's).
    return parse_source(spec, pull_interval=0.5)


@pytest.mark.parametrize("stop_sources", [True, False], ids=["record", "console"])
@pytest.mark.parametrize("kind", ["synthetic", "lsl"])
def test_the_file_holds_the_signal_up_to_the_moment_the_recording_stops(
    tmp_path, unique_id, kind, stop_sources
):
    """A source pulls from its device twice a second; stopping half an interval after a pull
    must not leave the device's last quarter second out of the file (the console stops the
    recording but keeps the source for its scope; recall-lab record stops both)."""
    outlet = _PacedOutlet(f"flush-{unique_id}") if kind == "lsl" else None
    source = _source(kind, f"flush-{unique_id}")
    writer = SessionWriter(tmp_path / "s.h5", participant_id="P003")
    recorder = Recorder(writer, {"eeg": source})
    try:
        recorder.start()
        time.sleep(1.2)
        pulled = source.buffer.count
        deadline = time.monotonic() + 2
        while source.buffer.count == pulled and time.monotonic() < deadline:
            time.sleep(0.002)
        assert source.buffer.count > pulled, "the source never pulled"
        time.sleep(0.25)  # half an interval after the pull
        stopped_at = local_clock()
        recorder.stop(stop_sources=stop_sources)
    finally:
        source.stop()
        if outlet is not None:
            outlet.close()
    assert recorder.error is None
    ts = read_session(tmp_path / "s.h5").eeg.timestamps
    rate = source.info.nominal_rate
    # Everything up to the stop, give or take a chunk of the device's (20 ms over LSL; the
    # synthetic board's own thread hands samples over every few ms).
    assert ts[-1] >= stopped_at - 0.03 - 2 / rate
    assert np.all(np.diff(ts) > 0)
