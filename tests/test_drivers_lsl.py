"""The LSL inlet source against real LSL outlets on this machine.

Every test names its streams with the ``unique_id`` fixture, so parallel runs (and other
people's streams on the network) never get mixed in.
"""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pylsl
import pytest

from data_schema.errors import SourceError
from data_schema.reader import read_session
from data_schema.recorder import Recorder
from data_schema.writer import SessionWriter
from drivers.clock import configure_liblsl
from drivers.lsl_source import LslSource, list_lsl_streams

configure_liblsl()


class CountingOutlet:
    """An LSL outlet whose first channel counts samples, pushed in chunks at real time.

    The timestamps pushed are exact (``t0 + k / rate``) so what reaches the file can be
    checked sample by sample.
    """

    def __init__(self, name: str, source_id: str, *, rate: float = 1000.0, n_channels: int = 8):
        info = pylsl.StreamInfo(name, "EEG", n_channels, rate, pylsl.cf_float32, source_id)
        info.set_channel_labels([f"E{i + 1}" for i in range(n_channels)])
        info.set_channel_types(["EEG"] * n_channels)
        info.set_channel_units(["microvolts"] * n_channels)
        self.outlet = pylsl.StreamOutlet(info)
        self.rate = rate
        self.n_channels = n_channels
        self.pushed_ts: list[np.ndarray] = []

    def push(self, first: int, n: int, seconds: float, chunk: int = 20) -> int:
        """Push samples ``first..`` for ``seconds`` (at most ``n``); return the next count."""
        t0 = pylsl.local_clock()
        count = first
        end = first + min(n, int(seconds * self.rate))
        while count < end:
            k = min(chunk, end - count)
            due = t0 + (count - first + k) / self.rate
            delay = due - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            data = np.zeros((k, self.n_channels), np.float32)
            data[:, 0] = np.arange(count, count + k)
            data[:, 1:] = np.sin(np.arange(count, count + k) / 10.0)[:, None]
            stamps = t0 + (np.arange(count, count + k) - first) / self.rate
            self.outlet.push_chunk(data, timestamp=stamps.tolist())
            self.pushed_ts.append(stamps)
            count += k
        return count

    def close(self) -> None:
        del self.outlet


def _wait_for(predicate, timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.mark.timeout(60)
def test_counting_stream_reaches_the_file_without_loss_duplication_or_reordering(
    tmp_path, unique_id
):
    sender = CountingOutlet(f"count-{unique_id}", unique_id, rate=1000.0, n_channels=8)
    source = LslSource("source_id", unique_id, timeout=5.0, markers=None)
    path = tmp_path / "lsl.h5"
    recorder = Recorder(SessionWriter(path, participant_id="P001"), {"eeg": source})
    recorder.start()  # resolves and connects the inlet before anything is pushed
    pusher = threading.Thread(target=sender.push, args=(0, 4000, 4.0))
    pusher.start()
    pusher.join()
    assert _wait_for(lambda: source.buffer.count >= 4000, 5.0)
    recorder.stop()
    sender.close()

    session = read_session(path)
    eeg = session.streams["eeg"]
    np.testing.assert_array_equal(eeg.data[:, 0], np.arange(4000))
    assert eeg.data.shape == (4000, 8)
    assert np.all(np.diff(eeg.timestamps) > 0)
    # Loopback clock offset is ~0 and the pushed times are regular, so after clock sync and
    # dejittering each sample keeps (within a millisecond) the time it was sent with.
    sent = np.concatenate(sender.pushed_ts)
    assert np.max(np.abs(eeg.timestamps - sent)) < 1e-3
    assert eeg.effective_rate == pytest.approx(1000.0, rel=1e-3)
    assert eeg.info.channel_names == [f"E{i + 1}" for i in range(8)]
    assert eeg.info.units == ["uV"] * 8
    assert eeg.info.source == f"lsl:count-{unique_id}"
    assert eeg.info.description["source_id"] == unique_id
    assert eeg.clock_mapping["clock"] == "lsl"
    assert recorder.status().samples_lost == {"eeg": 0}
    assert not [e for e in session.events if e.label in ("gap_start", "samples_lost")]


@pytest.mark.timeout(60)
def test_a_stopped_stream_is_marked_as_a_gap_within_2s_and_recording_resumes(tmp_path, unique_id):
    rate = 500.0
    sender = CountingOutlet(f"gap-{unique_id}", unique_id, rate=rate, n_channels=2)
    source = LslSource("source_id", unique_id, timeout=5.0, markers=None)
    path = tmp_path / "gap.h5"
    recorder = Recorder(SessionWriter(path, participant_id="P001"), {"eeg": source})
    recorder.start()
    n1 = sender.push(0, 750, 1.5)
    assert _wait_for(lambda: source.buffer.count >= n1, 5.0)
    sender.close()  # the amplifier's program quits
    stopped = time.monotonic()

    def gap_seen() -> bool:
        return any(e.label == "gap_start" for e in source.events.read_since(0)[0])

    assert _wait_for(gap_seen, 5.0, step=0.005)
    assert time.monotonic() - stopped < 2.0
    assert source.status().state == "stalled"

    # It comes back: a new outlet with the same source_id; liblsl reconnects by itself.
    sender2 = CountingOutlet(f"gap-{unique_id}", unique_id, rate=rate, n_channels=2)
    assert sender2.outlet.wait_for_consumers(timeout=15.0)
    n2 = sender2.push(n1, 750, 1.5)
    assert _wait_for(lambda: source.buffer.count >= n2, 5.0)
    recorder.stop()
    sender2.close()

    session = read_session(path)
    eeg = session.streams["eeg"]
    np.testing.assert_array_equal(eeg.data[:, 0], np.arange(n2))
    assert np.all(np.diff(eeg.timestamps) > 0)
    # Every sample keeps the time it was sent with, also the first ones after the reconnection
    # (liblsl's own dejittering placed those right after the old samples, seconds too early).
    sent = np.concatenate(sender.pushed_ts + sender2.pushed_ts)
    assert np.max(np.abs(eeg.timestamps - sent)) < 1e-3
    gap_start = session.events_where(source="recorder", label="gap_start")
    gap_end = session.events_where(source="recorder", label="gap_end")
    assert len(gap_start) == len(gap_end) == 1
    assert gap_start[0].value == gap_end[0].value == "eeg"
    last_before, first_after = eeg.timestamps[n1 - 1], eeg.timestamps[n1]
    assert gap_start[0].timestamp == pytest.approx(last_before + 1 / rate, abs=1e-6)
    assert gap_end[0].timestamp == pytest.approx(first_after, abs=1e-6)
    assert gap_end[0].duration == pytest.approx(first_after - last_before - 1 / rate, abs=1e-6)
    assert gap_end[0].duration > 1.5


@pytest.mark.timeout(60)
def test_string_and_numeric_marker_streams_become_events_at_their_times(tmp_path, unique_id):
    sender = CountingOutlet(f"data-{unique_id}", unique_id, rate=250.0, n_channels=2)
    words = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"words-{unique_id}", "Markers", 1, 0, pylsl.cf_string, f"w{unique_id}")
    )
    codes = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"codes-{unique_id}", "Triggers", 1, 0, pylsl.cf_int32, f"c{unique_id}")
    )
    # recall-lab's own event outlet must not be read back (it would loop events into the file)
    own = pylsl.StreamOutlet(
        pylsl.StreamInfo(
            f"recall-lab-markers-{unique_id}", "Markers", 1, 0, pylsl.cf_string, f"o{unique_id}"
        )
    )
    source = LslSource("name", f"data-{unique_id}", timeout=5.0)  # markers="auto"
    path = tmp_path / "markers.h5"
    recorder = Recorder(SessionWriter(path, participant_id="P001"), {"eeg": source})
    recorder.start()
    wanted = {f"words-{unique_id}", f"codes-{unique_id}"}
    assert _wait_for(lambda: wanted <= set(source.marker_streams), 10.0)
    assert not any(n.startswith("recall-lab-markers") for n in source.marker_streams)
    pusher = threading.Thread(target=sender.push, args=(0, 500, 2.0))
    pusher.start()
    sent = []
    for i, (word, code) in enumerate([("happy", 7), ("sad", -3), ("calm ünïcode", 42)]):
        time.sleep(0.3)
        t = pylsl.local_clock()
        words.push_sample([word], t)
        codes.push_sample([code], t + 0.001)
        own.push_sample([f"echo-{i}"], t)
        sent.append((t, word, code))
    pusher.join()
    recorder.stop()
    del words, codes, own

    session = read_session(path)
    got_words = session.events_where(source=f"lsl:words-{unique_id}")
    got_codes = session.events_where(source=f"lsl:codes-{unique_id}")
    assert [e.value for e in got_words] == [w for _, w, _ in sent]
    assert [e.value for e in got_codes] == [str(c) for _, _, c in sent]
    assert all(e.label == "marker" for e in got_words + got_codes)
    for (t, _, _), w, c in zip(sent, got_words, got_codes, strict=True):
        assert w.timestamp == pytest.approx(t, abs=1e-3)
        assert c.timestamp == pytest.approx(t + 0.001, abs=1e-3)
    assert not [e for e in session.events if "recall-lab-markers" in e.source]


@pytest.mark.timeout(30)
def test_markers_can_be_limited_to_named_streams_or_switched_off(unique_id):
    sender = CountingOutlet(f"data-{unique_id}", unique_id, rate=100.0, n_channels=1)
    keep = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"keep-{unique_id}", "Markers", 1, 0, pylsl.cf_string, f"k{unique_id}")
    )
    skip = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"skip-{unique_id}", "Markers", 1, 0, pylsl.cf_string, f"s{unique_id}")
    )
    named = LslSource("source_id", unique_id, markers=f"keep-{unique_id}")
    off = LslSource("source_id", unique_id, markers="none")
    with named, off:
        assert _wait_for(lambda: named.marker_streams == [f"keep-{unique_id}"], 10.0)
        time.sleep(1.2)  # a full rescan: the other marker stream is still not taken
        keep.push_sample(["a"])
        skip.push_sample(["b"])
        sender.push(0, 20, 0.2)
        time.sleep(0.3)
    named_events = [e for e in named.events.read_since(0)[0] if e.label == "marker"]
    assert [(e.source, e.value) for e in named_events] == [(f"lsl:keep-{unique_id}", "a")]
    assert not [e for e in off.events.read_since(0)[0] if e.label == "marker"]
    assert off.marker_streams == []
    del keep, skip
    sender.close()


def test_a_text_marker_stream_is_refused_as_a_signal(unique_id):
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(f"txt-{unique_id}", "EEG", 1, 100, pylsl.cf_string, unique_id)
    )
    with pytest.raises(SourceError, match="text markers, not a signal"):
        LslSource("source_id", unique_id, timeout=5.0).open()
    del outlet


def test_an_unresolvable_stream_names_what_was_looked_for_and_what_is_visible(unique_id):
    visible = CountingOutlet(f"visible-{unique_id}", unique_id, rate=100.0, n_channels=1)
    with pytest.raises(SourceError) as err:
        LslSource("name", f"absent-{unique_id}", timeout="0.5").open()
    message = str(err.value)
    assert "\n" not in message
    assert f"name=absent-{unique_id}" in message
    assert "0.5 s" in message
    assert f"visible-{unique_id}" in message
    visible.close()


def test_list_lsl_streams_describes_visible_streams(unique_id):
    sender = CountingOutlet(f"listed-{unique_id}", unique_id, rate=512.0, n_channels=4)
    streams = [s for s in list_lsl_streams(timeout=1.0) if s["source_id"] == unique_id]
    assert len(streams) == 1
    assert streams[0].pop("hostname") == socket.gethostname()
    assert streams[0] == {
        "name": f"listed-{unique_id}",
        "type": "EEG",
        "channels": 4,
        "rate": 512.0,
        "format": "float32",
        "source_id": unique_id,
    }
    sender.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prop": "host", "value": "x"}, "cannot look up an LSL stream by 'host'"),
        ({"prop": "name", "value": ""}, "give the LSL stream's name"),
        ({"prop": "name", "value": "x", "timeout": "soon"}, "timeout='soon' is not a number"),
        ({"prop": "name", "value": "x", "timeout": "-1"}, "must be a positive number"),
        ({"prop": "name", "value": "x", "speed": "2"}, "unknown LSL option(s) speed"),
    ],
)
def test_bad_lsl_options_are_one_clear_line(kwargs, message):
    with pytest.raises(SourceError) as err:
        LslSource(**kwargs)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.timeout(60)
def test_a_disk_that_stalls_longer_than_the_ring_buffer_holds_loses_nothing(tmp_path, unique_id):
    """The writer blocks for 3 s (a hung disk) while a 1-s ring buffer fills: the source
    must leave the samples with liblsl instead of overwriting what is not yet on disk."""
    rate = 500.0
    sender = CountingOutlet(f"stall-{unique_id}", unique_id, rate=rate, n_channels=4)
    # 1024 samples (the least a ring holds) is 2 s at 500 Hz.
    source = LslSource("source_id", unique_id, timeout=5.0, markers=None, buffer_seconds=1)
    path = tmp_path / "stall.h5"
    writer = SessionWriter(path, participant_id="P001")
    recorder = Recorder(writer, {"eeg": source})
    recorder.start()
    assert source.buffer.capacity <= 1024
    pusher = threading.Thread(target=sender.push, args=(0, 3500, 7.0))
    pusher.start()
    time.sleep(1.0)
    with writer._lock:  # every write of the recorder waits here, as on a disk that hangs
        time.sleep(3.5)
    pusher.join()
    assert _wait_for(lambda: recorder.status().samples_written["eeg"] >= 3500, 10.0)
    recorder.stop()
    sender.close()

    session = read_session(path)
    np.testing.assert_array_equal(session.streams["eeg"].data[:, 0], np.arange(3500))
    assert recorder.status().samples_lost == {"eeg": 0}
    assert not [e for e in session.events if e.label in ("gap_start", "samples_lost")]


@pytest.mark.timeout(60)
def test_a_disk_stall_longer_than_liblsls_own_buffer_loses_nothing(tmp_path, unique_id):
    """liblsl keeps only ``max_buflen`` seconds (1 s here) and drops the oldest samples
    beyond it: a 5-s hung disk must not cost the samples that neither the 2-s ring buffer nor
    liblsl can hold. The source keeps them in memory taken only while the disk is behind."""
    rate = 500.0
    sender = CountingOutlet(f"spill-{unique_id}", unique_id, rate=rate, n_channels=4)
    source = LslSource(
        "source_id", unique_id, timeout=5.0, markers=None, buffer_seconds=1, max_buflen=1
    )
    path = tmp_path / "spill.h5"
    writer = SessionWriter(path, participant_id="P001")
    recorder = Recorder(writer, {"eeg": source})
    recorder.start()
    pusher = threading.Thread(target=sender.push, args=(0, 4500, 9.0))
    pusher.start()
    time.sleep(1.0)
    with writer._lock:  # every write of the recorder waits here, as on a disk that hangs
        time.sleep(5.0)
        assert source.held_back
    pusher.join()
    assert _wait_for(lambda: recorder.status().samples_written["eeg"] >= 4500, 10.0)
    assert not source.held_back  # caught up: the memory taken for the stall is given back
    recorder.stop()
    sender.close()

    session = read_session(path)
    np.testing.assert_array_equal(session.streams["eeg"].data[:, 0], np.arange(4500))
    assert np.all(np.diff(session.streams["eeg"].timestamps) > 0)
    assert recorder.status().samples_lost == {"eeg": 0}
    assert not [e for e in session.events if e.label in ("gap_start", "samples_lost")]


@pytest.mark.timeout(30)
def test_the_ring_buffer_of_a_dense_stream_stays_within_its_memory_cap(unique_id):
    sender = CountingOutlet(f"dense-{unique_id}", unique_id, rate=2000.0, n_channels=256)
    source = LslSource("source_id", unique_id, timeout=5.0, markers=None)
    try:
        source.open()
        # 30 s of 256 channels at 2 kHz would be 62 MB; the buffer keeps what fits in 4 MiB.
        assert source.buffer.nbytes <= source.max_buffer_bytes
        assert source.buffer.capacity >= 2000  # still a second or more
    finally:
        source.stop()
        sender.close()
