"""Music-listening blocks: the library file, the protocol phase, the engine's events, and the
labels and clip timing the analysis reads back from a recorded session."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from data_schema.errors import ConfigError
from decoding.simulate_listening import ListeningSettings, write_library
from protocols import ProtocolEngine, builtin_protocol_path, load_protocol, parse_protocol
from protocols.engine import expand_protocol
from protocols.library import load_library
from protocols.simulated import SimulatedParticipant

REPO = Path(__file__).resolve().parents[1]

PROTOCOL = """
version: 1
name: listen-test
phases:
  - id: listen
    kind: listening
    library: {library}
    clips: {clips}
    clip_seconds: 3
    rating_seconds: 5
"""


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lib") / "music"
    write_library(folder, ListeningSettings(n_clips=6, clip_seconds=4.0), seed=3)
    return folder


def _protocol(tmp_path: Path, library: Path, clips: int = 4):
    f = tmp_path / "p.yaml"
    f.write_text(PROTOCOL.format(library=library, clips=clips))
    return load_protocol(f), f


def test_library_reads_norms_and_hashes(library):
    lib = load_library(library)
    assert len(lib) == 6
    assert all(c.valence is not None and 1 <= c.valence <= 9 for c in lib.clips)
    assert {c.valence > 5 for c in lib.clips} == {True, False}  # pleasant and unpleasant
    assert lib.clips[0].duration == pytest.approx(4.0, abs=0.01)
    assert len(lib.clips[0].sha256) == 64
    assert lib.clips[0].sha256 != lib.clips[1].sha256


@pytest.mark.parametrize(
    ("table", "expect"),
    [
        (None, "has no clips.csv"),
        ("id,file\na,missing.wav\n", "not found"),
        ("id,file\na,a.wav\na,a.wav\n", "used twice"),
        ("id,file,valence\na,a.wav,12\n", "outside the 1-9"),
        ("id,file,valence\na,a.wav,high\n", "not a number"),
        ("name,path\na,a.wav\n", "first line must name the columns"),
        ("id,file\na,../a.wav\n", "give a path inside"),
        ("id,file\n", "no clips listed"),
    ],
)
def test_bad_library_gives_one_line(tmp_path, table, expect):
    import soundfile

    soundfile.write(str(tmp_path / "a.wav"), np.zeros(800, np.float32), 8000)
    if table is not None:
        (tmp_path / "clips.csv").write_text(table)
    with pytest.raises(ConfigError, match=expect) as err:
        load_library(tmp_path)
    assert "\n" not in str(err.value)


def test_protocol_checks_the_library_at_load(tmp_path, library):
    with pytest.raises(ConfigError, match="asks for 9 clips but the library has 6") as err:
        _protocol(tmp_path, library, clips=9)
    assert ":7:" in str(err.value)  # the line of 'library' in the file
    bad = PROTOCOL.format(library=tmp_path / "nowhere", clips=2)
    (tmp_path / "q.yaml").write_text(bad)
    with pytest.raises(ConfigError, match="is not a folder"):
        load_protocol(tmp_path / "q.yaml")
    with pytest.raises(ConfigError, match="no 'duration'"):
        parse_protocol(PROTOCOL.format(library=library, clips=2) + "    duration: 10\n")


def test_order_is_seeded_per_participant_and_stable(tmp_path, library):
    protocol, f = _protocol(tmp_path, library)

    def order(pid: str) -> list[str]:
        steps = expand_protocol(protocol, base_dir=f.parent, participant_id=pid)
        return [s.clip.id for s in steps if s.kind == "listening"]

    assert order("P001") == order("P001")
    orders = {tuple(order(f"P{i:03d}")) for i in range(8)}
    assert len(orders) > 3  # participants hear different orders
    assert all(len(set(o)) == 4 for o in orders)  # four distinct clips each
    steps = expand_protocol(protocol, base_dir=f.parent, participant_id="P001")
    assert [s.kind for s in steps] == ["listening", "sam"] * 4
    assert steps[1].phase.scales == ["valence", "arousal"]
    assert steps[0].phase.duration == pytest.approx(3.0)  # clip_seconds below the clip length


def test_engine_records_clip_start_end_and_ratings(tmp_path, library):
    protocol, f = _protocol(tmp_path, library, clips=2)
    events = []
    engine = ProtocolEngine(protocol, emit=events.append, base_dir=f.parent, participant_id="P9")
    engine.start(100.0)
    first = engine.display()
    assert first.kind == "listening" and first.clip is not None
    engine.clip_started(100.05, output_latency=0.02)  # sound reached the speaker
    engine.clip_started(100.5, output_latency=0.02)  # a second report changes nothing
    engine.tick(103.0)  # clip_seconds: 3 -> the rating
    rating = engine.display()
    assert rating.kind == "sam" and rating.clip.id == first.clip.id
    engine.rate_sam("valence", 7, 104.0)
    engine.rate_sam("arousal", 3, 104.5)  # all scales rated: the next clip
    second = engine.display()
    assert second.kind == "listening" and second.clip.id != first.clip.id
    engine.clip_failed(104.6, "no sound device")
    engine.tick(110.0)
    engine.tick(120.0)  # the second rating times out after rating_seconds
    assert engine.state == "finished"

    starts = [json.loads(e.value) for e in events if e.label == "clip_start"]
    assert len(starts) == 1  # the second clip was never heard
    s = starts[0]
    assert s["clip"] == first.clip.id and s["block"] == "listen"
    assert s["sha256"] == first.clip.sha256 and s["output_latency"] == 0.02
    start_ev = next(e for e in events if e.label == "clip_start")
    assert start_ev.timestamp == 100.05 and start_ev.source == "stimulus"
    end = next(json.loads(e.value) for e in events if e.label == "clip_end")
    assert end["played"] == pytest.approx(3.0 - 0.05)
    err = next(json.loads(e.value) for e in events if e.label == "clip_error")
    assert err == {"clip": second.clip.id, "block": "listen", "error": "no sound device"}
    markers = [json.loads(e.value) for e in events if e.label == "phase_start"]
    assert [m["kind"] for m in markers] == ["listening", "sam", "listening", "sam"]
    assert all(m["block"] == "listen" and m["clip"] for m in markers)


def test_simulated_participant_rates_near_the_norms(tmp_path, library):
    protocol, f = _protocol(tmp_path, library, clips=6)
    events = []
    engine = ProtocolEngine(protocol, emit=events.append, base_dir=f.parent, participant_id="S")
    person = SimulatedParticipant(engine, seed=2)
    engine.start(0.0)
    t = 0.0
    while not engine.done and t < 500:
        t += 0.05
        person.act(t)
        engine.tick(t)
    assert engine.state == "finished"
    norms = {c.id: c.valence for c in load_library(library).clips}
    from decoding.listening import clip_plays_from_events

    plays = clip_plays_from_events(events, t)
    assert len(plays) == 6
    for p in plays:
        assert p.valence is not None and (p.valence > 5) == (norms[p.clip] > 5)


def test_listening_demo_runs_headless_into_a_valid_file(tmp_path):
    # The built-in demo, its clips cut to their first second (clip_seconds): they play at
    # their own speed whatever the time scale, and four whole clips would take half a minute.
    shipped = builtin_protocol_path("listening_demo")
    text = shipped.read_text().replace(
        "library: music ", f"library: {shipped.parent / 'music'}\n    clip_seconds: 1 "
    )
    assert "clip_seconds: 1" in text
    protocol = tmp_path / "listening_demo.yaml"
    protocol.write_text(text)
    out = tmp_path / "demo.h5"
    args = ["demo", "--protocol", str(protocol), "--out", str(out), "--time-scale", "0.15"]
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", *args, "--quiet", "--no-offline"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from data_schema.reader import read_session
    from decoding.listening import clip_plays

    s = read_session(out)
    plays = clip_plays(s)
    lib = load_library(builtin_protocol_path("listening_demo").parent / "music")
    assert sorted(p.clip for p in plays) == sorted(lib.ids)
    assert all(p.valence is not None and p.sha256 == lib.get(p.clip).sha256 for p in plays)
    v = subprocess.run(
        [sys.executable, "-m", "app.cli", "validate", str(out)], capture_output=True, cwd=REPO
    )
    assert v.returncode == 0


NARRATE = """
version: 1
name: narrate
memories: [{{id: m1, cue: A summer by the lake}}]
phases:
  - id: each
    kind: repeat
    phases:
      - {{id: tell, kind: narration, {fields}}}
"""


def _narrate(fields: str) -> tuple[ProtocolEngine, list]:
    """An engine for a one-memory protocol with one narration phase of ``fields``, and the
    list its events go to."""
    events: list = []
    engine = ProtocolEngine(parse_protocol(NARRATE.format(fields=fields)), emit=events.append)
    return engine, events


def test_narration_phase_runs_per_memory_with_a_start_and_a_stop_key():
    engine, events = _narrate("text: Tell the memory aloud., max_duration: 60")
    engine.start(0.0)
    d = engine.display()
    assert d.kind == "narration" and d.memory_id == "m1" and d.expects == "continue_key"
    assert d.narrating is False and d.continue_key == "space"
    # The first space: the participant begins to speak; the phase goes on.
    engine.key_down("space", 2.0)
    engine.key_up("space", 2.1)
    engine.tick(5.0)
    assert engine.state == "running" and engine.display().narrating is True
    engine.key_down("space", 12.0)
    engine.key_up("space", 12.1)
    engine.tick(12.2)
    assert engine.state == "finished"
    by_label = {e.label: e for e in events}
    start = by_label["narration_start"]
    assert start.source == "participant" and start.timestamp == 2.0
    assert json.loads(start.value) == {"memory": "m1", "key": "space"}
    stop = by_label["narration_end"]
    assert stop.timestamp == 12.0
    assert json.loads(stop.value) == {"memory": "m1", "reason": "key", "seconds": 10.0}
    end = json.loads(by_label["phase_end"].value)
    assert end["kind"] == "narration" and end["reason"] == "key" and end["memory"] == "m1"
    # Both key presses are recorded as key events too.
    downs = [e.timestamp for e in events if e.label == "key_down"]
    assert downs == [2.0, 12.0]
    alone = "version: 1\nname: n\nphases:\n  - {id: tell, kind: narration}\n"
    with pytest.raises(ConfigError, match="narration phase 'tell' is outside a repeat"):
        parse_protocol(alone)


def test_narration_with_its_own_start_key_pauses_and_a_timeout():
    engine, events = _narrate("start_key: s, continue_key: e, max_duration: 30")
    engine.start(0.0)
    assert engine.display().continue_key == "s"
    # The end key before the participant began to speak ends nothing.
    engine.key_down("e", 1.0)
    engine.key_up("e", 1.1)
    engine.tick(1.5)
    assert engine.state == "running" and engine.display().narrating is False
    engine.key_down("s", 3.0)
    engine.key_up("s", 3.1)
    assert engine.display().continue_key == "e"
    engine.pause(5.0)
    engine.resume(9.0)  # 4 s of pause: not speaking time
    engine.tick(40.0)  # max_duration: 30 s of phase time (+4 s paused) ends it at 34 s
    assert engine.state == "finished"
    stop = next(e for e in events if e.label == "narration_end")
    assert stop.timestamp == 34.0
    assert json.loads(stop.value) == {"memory": "m1", "reason": "timeout", "seconds": 27.0}


def test_narration_without_a_start_key_starts_with_the_phase():
    engine, events = _narrate("start_key: null, max_duration: 60")
    engine.start(0.0)
    assert engine.display().narrating is True
    engine.key_down("space", 7.0)
    engine.tick(7.5)
    assert engine.state == "finished"
    start = next(e for e in events if e.label == "narration_start")
    assert start.timestamp == 0.0 and json.loads(start.value)["key"] is None
    stop = next(e for e in events if e.label == "narration_end")
    assert json.loads(stop.value)["seconds"] == 7.0


def test_capture_section_says_when_camera_and_microphone_record():
    text = """
version: 1
name: cap
capture: {camera: [narration, recall], microphone: [narration]}
memories: [{id: m1, cue: A summer by the lake}]
phases:
  - {id: rest, kind: baseline, duration: 5}
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, duration: 5}
      - {id: tell, kind: narration, max_duration: 5}
"""
    events = []
    engine = ProtocolEngine(parse_protocol(text), emit=events.append)
    assert engine.display().capture == {"camera": False, "microphone": False}
    engine.start(0.0)
    seen = [engine.display().capture]
    for t in (5.5, 10.5, 16.0):
        engine.tick(t)
        seen.append(engine.display().capture)
    assert seen == [
        {"camera": False, "microphone": False},  # baseline
        {"camera": True, "microphone": False},  # recall
        {"camera": True, "microphone": True},  # narration
        {"camera": False, "microphone": False},  # finished
    ]
    changes = [json.loads(e.value) for e in events if e.label == "capture"]
    assert changes == seen  # one event per change, the first at the start
    with pytest.raises(ConfigError, match="'narate' is neither a phase kind"):
        parse_protocol(text.replace("microphone: [narration]", "microphone: [narate]"))
