"""``recall-lab demo`` end to end on BrainFlow's synthetic board, in (scaled) real time."""

from __future__ import annotations

import io
import json
import textwrap

import numpy as np
import pytest

from app.cli import main
from app.commands.demo import run_offline_stage
from data_schema.reader import read_session
from drivers.spec import parse_source
from protocols import builtin_protocol_path, expand_protocol, load_protocol, parse_protocol
from protocols.headless import run_headless


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo.h5"
    rc = main(["demo", "--out", str(out), "--time-scale", "0.1", "--seed", "7", "--no-offline"])
    assert rc == 0
    return out


def test_demo_prints_progress_and_a_summary(tmp_path, capsys):
    out = tmp_path / "d.h5"
    rc = main(["demo", "--out", str(out), "--time-scale", "0.05", "--no-offline"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "phase 1/14 welcome" in text and "phase 14/14 sam [m2]" in text
    assert f"wrote {out} (finished" in text
    assert "14 started, 14 ended" in text and "2 descriptions, 2 sketches" in text
    # a second run never overwrites the first
    rc = main(["demo", "--out", str(out), "--time-scale", "0.05", "--no-offline"])
    err = capsys.readouterr().err
    assert rc != 0 and "already exists" in err and len(err.strip().splitlines()) == 1


def test_demo_file_has_eeg_and_phase_markers_in_order(demo_file):
    s = read_session(demo_file)
    assert s.clean_close and s.participant_id == "SIM001"
    assert s.attrs["protocol"].startswith("demo")
    eeg = s.eeg
    assert eeg.info.source.startswith("brainflow") and eeg.data.shape[1] >= 8
    assert eeg.duration > 8.0  # ~12 s at time scale 0.1
    markers = [e for e in s.events if e.source == "protocol"]
    starts = [json.loads(e.value) for e in markers if e.label == "phase_start"]
    ends = [json.loads(e.value) for e in markers if e.label == "phase_end"]
    steps = expand_protocol(load_protocol(builtin_protocol_path("demo")))
    assert [(v["phase"], v["memory"]) for v in starts] == [
        (st.phase.id, st.memory_id) for st in steps
    ]
    assert [v["phase"] for v in ends] == [v["phase"] for v in starts]
    # each phase ends exactly where the next starts, all inside the EEG recording
    t_start = [e.timestamp for e in markers if e.label == "phase_start"]
    t_end = [e.timestamp for e in markers if e.label == "phase_end"]
    assert t_end[:-1] == t_start[1:]
    assert eeg.timestamps[0] < t_start[0] and t_end[-1] < eeg.timestamps[-1]
    assert np.all(np.diff(t_start) >= 0)
    # the timed phases last their scaled durations
    durations = {(v["phase"], v["memory"]): b - a for v, a, b in zip(starts, t_start, t_end)}
    assert durations[("baseline", None)] == pytest.approx(1.0, abs=1e-6)
    assert durations[("recall", "m1")] == pytest.approx(2.5, abs=1e-6)
    # markers are also annotations of the MNE object, in the EEG time base
    raw = s.to_raw()
    assert sum(d.startswith("phase_start") for d in raw.annotations.description) == len(steps)


def test_demo_file_has_keys_valence_and_sam(demo_file):
    s = read_session(demo_file)
    downs = [json.loads(e.value) for e in s.events_where(source="keyboard", label="key_down")]
    ups = s.events_where(source="keyboard", label="key_up")
    assert downs and ups
    assert {d["valence"] for d in downs if d["phase"] == "recall"} >= {"positive", "negative"}
    # one down and one up per press (issue 8: the demo wrote 384 downs against 19 ups);
    # auto-repeats of long holds are counted in the key up, never recorded as presses
    assert len(downs) == len(ups)
    assert any(json.loads(e.value)["repeats"] for e in ups)
    states = [e.value for e in s.events_where(source="participant", label="valence_state")]
    assert {"positive", "negative", "neutral"} <= set(states)
    sam_v = s.events_where(source="participant", label="sam_valence")
    sam_a = s.events_where(source="participant", label="sam_arousal")
    assert len(sam_v) == len(sam_a) == 2
    assert all(1 <= int(e.value) <= 9 for e in sam_v + sam_a)


def test_demo_file_has_description_sketch_and_melody(demo_file):
    from PIL import Image

    s = read_session(demo_file)
    assert set(s.memories) == {"m1", "m2"}
    for mem_id, mem in s.memories.items():
        assert mem.attrs["cue"] and mem.attrs["index"] in (0, 1)
        assert len(mem.description) >= 10 and mem.description_timestamp > mem.attrs["started"]
        pts = mem.sketch_strokes
        assert len(pts) > 100 and np.all(np.diff(pts["timestamp"]) > 0), mem_id
        assert 0 < pts["pressure"].min() <= pts["pressure"].max() <= 1
        img = Image.open(io.BytesIO(mem.sketch_png))
        assert img.size == (800, 600)
        assert mem.melody_rate == 32000 and mem.melody_attrs["origin"] == "microphone"
        assert 2.0 <= len(mem.melody) / mem.melody_rate <= 5.0
        assert np.abs(mem.melody).max() <= 1.0 and mem.melody.std() > 0.05


CONTINUOUS = """\
version: 1
name: continuous_test
valence: {mode: continuous, positive_key: "1", negative_key: "3", speed: 0.5, rate: 20}
memories: [{id: m1, cue: a bright morning}]
phases:
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, duration: 20}
"""


def test_continuous_valence_is_recorded_as_a_stream(tmp_path):
    protocol = parse_protocol(textwrap.dedent(CONTINUOUS))
    out = tmp_path / "c.h5"
    result = run_headless(protocol, out, source=parse_source("synthetic"), time_scale=0.1, seed=2)
    assert result.state == "finished"
    s = read_session(out)
    stream = s.streams["valence"]
    assert stream.info.nominal_rate == 20.0  # the rating rate is a wall-clock rate
    start = s.events_where(source="protocol", label="phase_start")[0].timestamp
    end = s.events_where(source="protocol", label="phase_end")[0].timestamp
    ts, values = stream.timestamps, stream.data[:, 0]
    assert ts[0] == pytest.approx(start) and start <= ts[-1] <= end
    np.testing.assert_allclose(np.diff(ts), 1 / 20.0, rtol=1e-6)  # a fixed grid
    assert len(ts) == pytest.approx((end - start) * 20, abs=1.5)
    assert -1.0 <= values.min() and values.max() <= 1.0
    assert values.max() > 0.2  # m1's mood is positive: the cursor went up
    ratings = s.events_where(source="participant", label="valence_rating")
    assert ratings and all(-1 <= float(e.value) <= 1 for e in ratings)


def test_offline_stage_that_is_not_installed_is_skipped(tmp_path):
    outcome = run_offline_stage("no_such_stage", tmp_path / "x.h5")
    assert outcome.startswith("skipped: the 'no_such_stage' command is not installed")


@pytest.mark.slow
@pytest.mark.timeout(1800)  # decode fits CEBRA on the demo recording: minutes on 2 cores
def test_demo_runs_the_installed_offline_stages(tmp_path, capsys):
    out = tmp_path / "full.h5"
    rc = main(["demo", "--out", str(out), "--time-scale", "0.3", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    for stage in ("decode", "generate"):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{stage}: "))
        assert line.split(": ", 1)[1].startswith(("done", "skipped"))


def test_phase_markers_reach_the_lsl_marker_outlet(tmp_path, unique_id):
    import pylsl

    from drivers.outlets import MarkerOutlet

    protocol = parse_protocol(textwrap.dedent(CONTINUOUS))
    out = tmp_path / "m.h5"
    with MarkerOutlet(unique_id, source_id=unique_id) as outlet:
        found = pylsl.resolve_byprop("source_id", unique_id, timeout=10)
        assert found, "marker outlet not visible on loopback"
        inlet = pylsl.StreamInlet(found[0])
        inlet.open_stream(timeout=10)
        run_headless(
            protocol,
            out,
            source=parse_source("synthetic"),
            time_scale=0.1,
            event_sinks=[outlet.push_event],
        )
        received = []
        deadline = pylsl.local_clock() + 5
        while pylsl.local_clock() < deadline:
            samples, stamps = inlet.pull_chunk(timeout=0.2)
            received += [(s[0], t) for s, t in zip(samples, stamps, strict=True)]
            if any(s.startswith("session_end") for s, _ in received):
                break
        inlet.close_stream()
    in_file = read_session(out).events_where(source="protocol")
    lsl = [(s, t) for s, t in received if s.split("/", 1)[0] in {e.label for e in in_file}]
    assert [s.split("/", 1)[0] for s, _ in lsl] == [e.label for e in in_file]
    np.testing.assert_allclose([t for _, t in lsl], [e.timestamp for e in in_file], atol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--time-scale", "0"], "--time-scale must be a positive number"),
        (["--participant", "Jane Doe"], "is not a pseudonym code"),
        (["--protocol", "nonesuch"], "no built-in protocol 'nonesuch'"),
        (["--source", "replay:missing-recording.h5"], "no such file"),
    ],
)
def test_demo_bad_input_gives_one_line_and_no_file(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    rc = main(["demo", "--out", str(out), "--no-offline", *args])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()
