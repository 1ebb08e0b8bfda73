"""The validator: a complete, proper file passes; each departure from the spec is named."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_schema.derived import new_derived_run
from data_schema.types import Event, StreamInfo
from data_schema.validator import Problem, validate_session
from data_schema.writer import STROKE_DTYPE, SessionWriter

REPO = Path(__file__).resolve().parents[1]
T0 = 500.0


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (16, 12), 255).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def complete_session(tmp_path_factory) -> Path:
    """A session with every part the spec describes, written through the public writer."""
    path = tmp_path_factory.mktemp("valid") / "complete.h5"
    w = SessionWriter(path, participant_id="P042", protocol="rym-1.0")
    n, rate = 2000, 250.0
    info = StreamInfo("eeg", ["Fz", "Cz", "EOG"], ["eeg", "eeg", "eog"], ["uV"] * 3, rate)
    w.add_stream("eeg", info, clock={"from": "unix", "offset": 1.7e9, "uncertainty": 1e-5})
    ts = T0 + np.arange(n) / rate
    w.append("eeg", np.random.default_rng(1).normal(size=(n, 3)), ts)
    w.add_stream("valence", StreamInfo("valence", ["valence"], ["misc"], ["a.u."], 0, "Rating"))
    w.append("valence", [[0.2], [-0.5]], [T0 + 1, T0 + 2])
    key = {"key": "1", "valence": "positive", "auto_repeat": False}
    w.add_events(
        [
            Event(T0 + 1, "protocol", "phase_start", json.dumps({"phase": "r1", "kind": "recall"})),
            Event(T0 + 2, "keyboard", "key_down", json.dumps(key)),
            Event(T0 + 2.1, "keyboard", "key_up", json.dumps(key)),
            Event(T0 + 3, "participant", "sam_valence", "7"),
            Event(T0 + 4, "lsl:Markers", "marker", "anything goes"),
        ]
    )
    w.memory_group("m1", cue="a birthday", index=0, started=T0 + 1)
    w.set_description("m1", "cake", T0 + 5)
    pts = np.zeros(3, STROKE_DTYPE)
    pts["stroke"], pts["pressure"] = [0, 0, -1], 0.5
    w.add_sketch_points("m1", pts)
    w.set_sketch_image("m1", _png(), T0 + 6, width=16, height=12)
    w.append_melody("m1", np.zeros(800), sample_rate=8000, origin="file:tune.wav")
    w.close()
    with new_derived_run(path, "decoding", {"model": "cebra"}) as g:
        g.create_dataset("score", data=0.5)
    return path


def test_a_complete_session_has_no_problems(complete_session):
    assert validate_session(complete_session) == []


def _stream_ts_backwards(f):
    f["streams/eeg/timestamps"][100] = T0


def _set(path, value):
    def apply(f):
        obj_path, attr = path.rsplit("@", 1)
        f[obj_path].attrs[attr] = value

    return apply


def _replace(path, **kw):
    def apply(f):
        del f[path]
        f.create_dataset(path, **kw)

    return apply


def _png_garbage(f):
    img = f["memories/m1/sketch/image_png"]
    img[:8] = np.frombuffer(b"GIF89a\0\0", np.uint8)


def _bad_run_name(f):
    f.move("derived/decoding/run-001", "derived/decoding/latest")


def _unclean(f):
    f.attrs["clean_close"] = False
    del f.attrs["ended_at"]


def _bad_event_value(f):
    ev = f["events"][()]
    ev["value"][1] = "1"  # a bare key instead of the JSON the spec asks for
    f["events"][...] = ev


CORRUPTIONS = {
    "participant is a name": (_set("/@participant_id", "Jane Doe"), "error", "/", "pseudonym"),
    "timestamps backwards": (
        _stream_ts_backwards,
        "error",
        "/streams/eeg/timestamps",
        "backwards",
    ),
    "channel names short": (
        _set("/streams/eeg@channel_names", json.dumps(["Fz", "Cz"])),
        "error",
        "/streams/eeg",
        "2 entries for 3 channels",
    ),
    "units not JSON": (
        _set("/streams/eeg@units", "uV,uV,uV"),
        "error",
        "/streams/eeg",
        "not valid JSON",
    ),
    "nominal rate wrong": (
        _set("/streams/eeg@nominal_rate", 500.0),
        "warning",
        "/streams/eeg/timestamps",
        "nominal_rate says 500",
    ),
    "data float64 ints": (
        _replace("streams/valence/data", data=np.zeros((2, 1), np.int16)),
        "error",
        "/streams/valence/data",
        "not float32",
    ),
    "data and timestamps disagree": (
        _replace("streams/valence/timestamps", data=np.array([T0 + 1.0])),
        "error",
        "/streams/valence",
        "2 rows but timestamps has 1",
    ),
    "schema not MAJOR.MINOR": (_set("/@schema_version", "1"), "error", "/", "MAJOR.MINOR"),
    "event value not JSON": (_bad_event_value, "error", "/events", "keyboard/key_down"),
    "PNG signature": (_png_garbage, "error", "/memories/m1/sketch/image_png", "PNG"),
    "stroke dtype": (
        _replace("memories/m1/sketch/strokes", data=np.zeros((3, 4), np.float32)),
        "error",
        "/memories/m1/sketch/strokes",
        "stroke dtype",
    ),
    "melody rate": (
        _set("/memories/m1/melody@sample_rate", 0),
        "error",
        "/memories/m1/melody",
        "sample_rate",
    ),
    "derived run name": (_bad_run_name, "error", "/derived/decoding/latest", "run-NNN"),
    "derived config": (
        _set("/derived/decoding/run-001@config", "{model: cebra"),
        "error",
        "/derived/decoding/run-001",
        "config",
    ),
    "not closed": (_unclean, "warning", "/", "last flush"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_each_departure_from_the_spec_is_explained(complete_session, tmp_path, case):
    corrupt, severity, where, text = CORRUPTIONS[case]
    path = tmp_path / "bad.h5"
    shutil.copy(complete_session, path)
    with h5py.File(path, "r+") as f:
        corrupt(f)
    problems = validate_session(path)
    assert len(problems) == 1, problems  # the one problem, and no knock-on noise
    p = problems[0]
    assert (p.severity, p.where) == (severity, where)
    assert text in str(p)
    assert p.meaning  # every problem says what it means


def test_validate_command_prints_each_problem_and_exits_1_on_errors(complete_session, tmp_path):
    path = tmp_path / "bad.h5"
    shutil.copy(complete_session, path)
    with h5py.File(path, "r+") as f:
        _set("/@participant_id", "Jane Doe")(f)
        _unclean(f)
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("error: /: participant_id 'Jane Doe'")
    assert lines[1].startswith("warning: /: clean_close is false")
    assert "1 error(s), 1 warning(s)" in lines[-1]

    ok = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", "--json", str(complete_session)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["valid"] is True


def test_problem_reads_as_one_line():
    p = Problem("error", "/streams/eeg", "timestamps go backwards", "events cannot be placed")
    assert str(p) == "error: /streams/eeg: timestamps go backwards (events cannot be placed)"
