"""Reading session files back: units, annotations, ordering, memories, derived runs, crashes."""

from __future__ import annotations

import io
import json
import threading

import h5py
import numpy as np
import pytest

from data_schema.derived import latest_derived_run, list_derived_runs, new_derived_run
from data_schema.errors import SessionFileError
from data_schema.reader import UnclosedSessionWarning, read_session
from data_schema.types import Event, StreamInfo
from data_schema.writer import STROKE_DTYPE, SessionWriter

T0 = 1234.5  # an arbitrary LSL-clock origin, as on a real machine


def _info(n_eeg: int = 2, rate: float = 100.0) -> StreamInfo:
    names = [f"EEG{i}" for i in range(n_eeg)] + ["GSR"]
    return StreamInfo(
        "eeg", names, ["eeg"] * n_eeg + ["misc"], ["uV"] * n_eeg + ["a.u."], rate, "EEG", "test"
    )


def _write(path, n: int = 300, rate: float = 100.0, events=(), close: bool = True):
    w = SessionWriter(path, participant_id="P007", protocol="rym-1.0")
    w.add_stream("eeg", _info(rate=rate))
    rng = np.random.default_rng(0)
    data = rng.normal(0, 20, (n, 3)).astype(np.float32)
    ts = T0 + np.arange(n) / rate + rng.uniform(-1e-4, 1e-4, n)  # device jitter
    ts.sort()
    for i in range(0, n, 37):  # appends of odd sizes, as chunks arrive
        w.append("eeg", data[i : i + 37], ts[i : i + 37])
    w.add_events(events)
    if close:
        w.close()
    return w, data, ts


def test_to_raw_converts_microvolts_to_volts_and_leaves_other_units(tmp_path):
    _, data, _ = _write(tmp_path / "s.h5")
    raw = read_session(tmp_path / "s.h5").to_raw()
    got = raw.get_data()
    np.testing.assert_allclose(got[:2], data[:, :2].T.astype(np.float64) * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(got[2], data[:, 2], rtol=1e-6)  # a.u. stays as stored
    assert raw.info["sfreq"] == 100.0
    assert raw.get_channel_types() == ["eeg", "eeg", "misc"]


def test_annotations_sit_on_the_sample_nearest_each_event(tmp_path):
    _, _, ts = _write(tmp_path / "s.h5")
    events = [
        Event(float(ts[50] + 0.004), "keyboard", "key_down", '{"key": "1"}'),  # nearer 50
        Event(float(ts[51] - 0.0045), "protocol", "phase_start", "recall"),  # nearer 51
        Event(float(ts[200]), "participant", "sam_valence", "7", 0.5),
        Event(float(ts[290]), "recorder", "gap_end", "eeg", 5.0),  # lasts past the end
        Event(float(ts[0] - 5.0), "recorder", "gap_start", "eeg"),  # before the stream
    ]
    _write(tmp_path / "e.h5", events=events)
    raw = read_session(tmp_path / "e.h5").to_raw()
    ann = raw.annotations
    onsets = np.round((ann.onset - raw.first_time) * raw.info["sfreq"]).astype(int)
    assert onsets.tolist() == [50, 51, 200, 290]
    assert list(ann.description) == [
        'key_down/{"key": "1"}',
        "phase_start/recall",
        "sam_valence/7",
        "gap_end/eeg",
    ]
    np.testing.assert_allclose(ann.duration, [0.0, 0.0, 0.5, 0.09])


def test_events_come_back_sorted_with_ties_in_write_order(tmp_path):
    events = [
        Event(T0 + 2.0, "protocol", "phase_end", "b"),
        Event(T0 + 1.0, "protocol", "phase_start", "first"),
        Event(T0 + 1.0, "protocol", "phase_start", "second"),
        Event(T0 + 0.5, "keyboard", "key_down", '{"key": "3"}'),
    ]
    _write(tmp_path / "s.h5", events=events)
    s = read_session(tmp_path / "s.h5")
    assert [e.value for e in s.events] == ['{"key": "3"}', "first", "second", "b"]
    assert s.events_where(source="protocol", label="phase_start")[1].value == "second"


def _png(width: int, height: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(img).line((2, 2, width - 3, height - 3), fill="black", width=3)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_memories_round_trip(tmp_path):
    path = tmp_path / "m.h5"
    w = SessionWriter(path, participant_id="P010")
    w.memory_group("m1", cue="a summer day", index=0, started=T0)
    w.set_description("m1", "draft", T0 + 1)
    w.set_description("m1", "Swimming in the lake, water cold — 😀", T0 + 2)
    pts = np.zeros(5, STROKE_DTYPE)
    pts["stroke"] = [0, 0, 0, -2, 1]
    pts["timestamp"] = T0 + np.arange(5) * 0.01
    pts["x"], pts["y"], pts["pressure"] = np.arange(5), np.arange(5) * 2, 1.0
    w.add_sketch_points("m1", pts[:3])
    w.add_sketch_points("m1", pts[3:])
    png = _png(40, 30)
    w.set_sketch_image("m1", png, T0 + 3, width=40, height=30)
    tone = np.sin(np.linspace(0, 200, 22050, dtype=np.float32)) * 0.5
    w.append_melody("m1", tone[:10000], sample_rate=22050, origin="microphone", start_timestamp=T0)
    w.append_melody("m1", tone[10000:], sample_rate=22050, origin="microphone")
    w.close()

    m = read_session(path).memories["m1"]
    assert m.attrs["cue"] == "a summer day" and m.attrs["index"] == 0
    assert m.description == "Swimming in the lake, water cold — 😀"
    assert m.description_timestamp == T0 + 2
    np.testing.assert_array_equal(m.sketch_strokes, pts)
    assert m.sketch_png == png
    from PIL import Image

    assert Image.open(io.BytesIO(m.sketch_png)).size == (40, 30)
    assert m.melody_rate == 22050 and m.melody.shape == (22050, 1)
    np.testing.assert_array_equal(m.melody[:, 0], tone)
    assert m.melody_attrs["origin"] == "microphone"


def test_derived_runs_never_overwrite_and_a_failed_run_leaves_nothing(tmp_path):
    path = tmp_path / "d.h5"
    _write(path)
    with new_derived_run(path, "decoding", {"model": "cebra", "seed": 1}) as g:
        g.create_dataset("embedding", data=np.ones((3, 2)))
    with new_derived_run(path, "decoding", {"seed": 2}) as g:
        g.create_dataset("embedding", data=np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="diverged"):
        with new_derived_run(path, "decoding", {"seed": 3}) as g:
            g.create_dataset("partial", data=[1])
            raise RuntimeError("training diverged")
    assert list_derived_runs(path, "decoding") == ["run-001", "run-002"]
    assert latest_derived_run(path, "decoding") == "/derived/decoding/run-002"
    with h5py.File(path) as f:
        assert json.loads(f["/derived/decoding/run-001"].attrs["config"])["seed"] == 1
        np.testing.assert_array_equal(f["/derived/decoding/run-001/embedding"][()], 1.0)
    with pytest.raises(SessionFileError, match="no generation results"):
        latest_derived_run(path, "generation")


def test_rows_never_written_before_a_crash_are_dropped(tmp_path):
    path = tmp_path / "c.h5"
    _, data, ts = _write(path)
    # What a crash can leave: no clean close, timestamps grown past the data, and rows HDF5
    # allocated that never received values (they read as the NaN fill value).
    with h5py.File(path, "r+") as f:
        f.attrs["clean_close"] = False
        del f.attrs["ended_at"]
        f["streams/eeg/timestamps"].resize(len(ts) + 40, axis=0)
        f["streams/eeg/data"].resize(len(ts) + 25, axis=0)
    with pytest.warns(UnclosedSessionWarning, match="not closed properly"):
        s = read_session(path)
    assert s.eeg.n_samples == len(ts)
    np.testing.assert_array_equal(s.eeg.timestamps, ts)
    np.testing.assert_array_equal(s.eeg.data, data)


def test_load_data_false_reads_timestamps_only(tmp_path):
    _write(tmp_path / "s.h5", n=250)
    s = read_session(tmp_path / "s.h5", load_data=False)
    assert s.eeg.n_samples == 250 and s.eeg.data.shape == (0, 3)
    assert 99 < s.eeg.effective_rate < 101


def test_malformed_stream_gives_one_line_pointing_to_validate(tmp_path):
    path = tmp_path / "s.h5"
    _write(path)
    with h5py.File(path, "r+") as f:
        del f["streams/eeg"].attrs["channel_names"]
    with pytest.raises(SessionFileError) as err:
        read_session(path)
    assert "recall-lab validate" in str(err.value) and "\n" not in str(err.value)
    # While the error (and its traceback) is still alive, other threads can use HDF5: a reader
    # that gave up half-way through h5py's items() iterator would keep h5py's global lock and
    # freeze a recorder thread.
    done = threading.Event()

    def other_thread() -> None:
        with h5py.File(path, "r"):
            done.set()

    t = threading.Thread(target=other_thread, daemon=True)
    t.start()
    assert done.wait(10), "h5py's lock was left held by the failed read"
    t.join()
    assert err.value is not None
