"""The simulated participant: reproducible, human-like, and driving the engine like the GUI."""

from __future__ import annotations

import io
import json

import numpy as np

from protocols import ProtocolEngine, builtin_protocol_path, load_protocol
from protocols.engine import MelodyAudio, SketchFinished, SketchPoints
from protocols.simulated import MELODY_RATE, SimulatedParticipant, synthesize_melody


def drive(seed: int, t0: float, scale: float = 1.0, tick: float = 0.05):
    """Run the demo protocol on a simulated clock (no sleeping)."""
    protocol = load_protocol(builtin_protocol_path("demo")).scaled(scale)
    events, records = [], []
    engine = ProtocolEngine(protocol, emit=events.append, store=records.append)
    person = SimulatedParticipant(engine, seed=seed, time_scale=scale)
    engine.start(t0)
    t = t0
    while not engine.done and t < t0 + 1000:
        t += tick
        person.act(t)
        engine.tick(t)
    return engine, person, events, records


def relative(events, t0):
    return [(round(e.timestamp - t0, 9), e.source, e.label, e.value) for e in events]


def test_same_seed_same_session_other_seed_other_session():
    _, _, ev_a, _ = drive(seed=3, t0=1000.0)
    _, _, ev_b, _ = drive(seed=3, t0=5000.0, tick=0.013)  # other clock origin and tick rate
    _, _, ev_c, _ = drive(seed=4, t0=1000.0)
    assert relative(ev_a, 1000.0) == relative(ev_b, 5000.0)
    assert relative(ev_a, 1000.0) != relative(ev_c, 1000.0)


def test_simulated_session_is_complete_and_human_like():
    engine, person, events, _records = drive(seed=1, t0=0.0)
    assert engine.state == "finished"
    ends = [json.loads(e.value) for e in events if e.label == "phase_end"]
    # every open phase was ended by the participant, not by its time limit
    assert all(v["reason"] != "timeout" for v in ends)
    assert 90 < events[-1].timestamp < 150  # "about two minutes"
    downs = [e for e in events if e.label == "key_down" and e.source == "keyboard"]
    values = [json.loads(e.value) for e in downs]
    presses = [v for v in values if v["phase"] == "recall"]
    ups = [json.loads(e.value) for e in events if e.label == "key_up" and e.source == "keyboard"]
    assert len(ups) == len(downs)  # one down and one up per press, as the app records them
    assert len(presses) >= 6 and any(u["repeats"] for u in ups)  # taps and long holds
    assert {v["valence"] for v in presses} == {"positive", "negative"}
    # memory m1 is mostly positive, m2 mostly negative: time in each reported state
    for mem, mood, other in (("m1", "positive", "negative"), ("m2", "negative", "positive")):
        share = _time_in_state(events, mem)
        assert share[mood] > share[other], (mem, share)
    # inter-press intervals are human: no two presses of one key closer than 0.3 s
    t_press = np.array([e.timestamp for e, v in zip(downs, values, strict=True)
                        if v["phase"] == "recall"])  # fmt: skip
    assert np.diff(t_press).min() >= 0.3
    states = [e.value for e in events if e.label == "valence_state"]
    assert "neutral" in states  # neutral spells between episodes
    sam = {e.label: int(e.value) for e in events if e.label == "sam_valence"}
    assert sam and all(1 <= v <= 9 for v in sam.values())
    assert person.log["descriptions"] == 2


def _time_in_state(events, memory):
    """Seconds of each reported valence during the recall of ``memory``."""
    start = end = None
    for e in events:
        if e.source == "protocol" and e.label in ("phase_start", "phase_end"):
            v = json.loads(e.value)
            if v["kind"] == "recall" and v["memory"] == memory:
                if e.label == "phase_start":
                    start = e.timestamp
                else:
                    end = e.timestamp
    share = {"positive": 0.0, "negative": 0.0, "neutral": 0.0}
    state, since = "neutral", start
    for e in events:
        if e.label == "valence_state" and start <= e.timestamp <= end:
            share[state] += e.timestamp - since
            state, since = e.value, e.timestamp
    share[state] += end - since
    return share


def test_sketch_points_are_timed_with_pressure_and_png_matches_the_canvas():
    from PIL import Image

    _, _, _, records = drive(seed=2, t0=0.0)
    points = np.concatenate([r.points for r in records if isinstance(r, SketchPoints)
                             and r.memory_id == "m1"])  # fmt: skip
    assert len(points) > 100
    assert np.all(np.diff(points["timestamp"]) > 0)  # drawn in order, each point timed
    assert 0 < points["pressure"].min() and points["pressure"].max() <= 1
    assert len(np.unique(points["stroke"])) >= 3
    final = next(r for r in records if isinstance(r, SketchFinished) and r.memory_id == "m1")
    assert final.timestamp > points["timestamp"].max()
    img = Image.open(io.BytesIO(final.png))
    assert img.size == (final.width, final.height) == (800, 600)
    pixels = np.asarray(img.convert("L"))
    assert (pixels < 128).mean() > 0.002  # something was drawn


def test_melody_is_a_few_seconds_of_hummed_tones_in_chunks():
    _, _, events, records = drive(seed=5, t0=0.0)
    chunks = [r for r in records if isinstance(r, MelodyAudio) and r.memory_id == "m2"]
    assert len(chunks) > 1 and {c.sample_rate for c in chunks} == {MELODY_RATE}
    assert len({c.start_timestamp for c in chunks}) == 1
    start = chunks[0].start_timestamp  # when recording began, before the first chunk arrived
    melody_phase = [e for e in events if e.label == "phase_start" and '"melody"' in e.value]
    assert melody_phase[-1].timestamp < start
    audio = np.concatenate([c.audio for c in chunks])
    assert 2.0 <= len(audio) / MELODY_RATE <= 5.0
    assert np.abs(audio).max() <= 1.0 and audio.std() > 0.05
    spectrum = np.abs(np.fft.rfft(audio))
    peak = np.fft.rfftfreq(len(audio), 1 / MELODY_RATE)[spectrum.argmax()]
    assert 150 < peak < 800  # a sung pitch, not noise


def test_melody_mode_follows_the_mood():
    rng = np.random.default_rng(0)
    a = synthesize_melody(rng, 2.0, mood="positive")
    b = synthesize_melody(np.random.default_rng(0), 2.0, mood="negative")
    assert a.dtype == np.float32 and len(a) == 2 * MELODY_RATE
    assert not np.allclose(a, b)


def test_participant_presses_the_continue_key_wherever_a_phase_waits_for_it():
    from protocols import parse_protocol

    text = """\
version: 1
name: t
memories: [{id: m1, cue: a garden}]
phases:
  - {id: rest, kind: baseline, until: key, continue_key: enter}
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, until: key, max_duration: 60}
"""
    events = []
    engine = ProtocolEngine(parse_protocol(text), emit=events.append)
    person = SimulatedParticipant(engine, seed=0)
    engine.start(0.0)
    t = 0.0
    while not engine.done and t < 100:
        t += 0.05
        person.act(t)
        engine.tick(t)
    ends = [json.loads(e.value) for e in events if e.label == "phase_end"]
    assert [(v["phase"], v["reason"]) for v in ends] == [("rest", "key"), ("recall", "key")]
    recall_end = [e.timestamp for e in events if e.label == "phase_end"][-1]
    assert recall_end > 15.0  # the participant recalled for a while before going on


def test_participant_chooses_a_file_when_humming_is_not_offered():
    from protocols import parse_protocol

    text = """\
version: 1
name: t
memories: [{id: m1, cue: a garden}]
phases:
  - {id: tune, kind: melody, memory: m1, sources: [file]}
"""
    events, records = [], []
    engine = ProtocolEngine(parse_protocol(text), emit=events.append, store=records.append)
    person = SimulatedParticipant(engine, seed=0)
    engine.start(0.0)
    t = 0.0
    while not engine.done and t < 60:
        t += 0.05
        person.act(t)
        engine.tick(t)
    audio = [r for r in records if isinstance(r, MelodyAudio)]
    assert len(audio) == 1 and audio[0].origin == "file:simulated-melody-m1.wav"
    done = [json.loads(e.value) for e in events if e.label == "melody_submitted"]
    assert done == [{"memory": "m1", "origin": "file:simulated-melody-m1.wav", "seconds": 4.0}]
