"""The recorder end to end: every sample and every event reaches the file, in order."""

from __future__ import annotations

import json
import threading
import time

import numpy as np

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

    def _pull(self):
        due = int((local_clock() - self._t0) * self.rate)
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
