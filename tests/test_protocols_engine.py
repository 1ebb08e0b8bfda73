"""The protocol engine as a state machine fed injected times: no clock, no Qt."""

from __future__ import annotations

import json

import numpy as np
import pytest

from data_schema.writer import STROKE_DTYPE
from protocols import (
    DescriptionSubmitted,
    MelodyAudio,
    MemoryStarted,
    ProtocolEngine,
    SketchFinished,
    SketchPoints,
    parse_protocol,
)

PROTOCOL = """\
version: 1
name: t
valence: {mode: discrete, positive_key: "1", negative_key: "3", neutral_after: 2.0}
memories:
  - {id: m1, cue: the lake}
  - {id: m2, cue: the station}
phases:
  - {id: hello, kind: instructions, text: Press space}
  - {id: rest, kind: baseline, eyes: closed, duration: 10}
  - id: each
    kind: repeat
    phases:
      - {id: cue, kind: cue, duration: 3}
      - {id: recall, kind: recall, duration: 20}
      - {id: describe, kind: description, min_chars: 5, min_duration: 4}
      - {id: sam, kind: sam, scales: [valence, arousal], max_duration: 8}
"""


class Harness:
    def __init__(self, text: str = PROTOCOL) -> None:
        self.events = []
        self.records = []
        self.samples = []
        self.changes = []
        self.engine = ProtocolEngine(
            parse_protocol(text),
            emit=self.events.append,
            store=self.records.append,
            valence_samples=lambda v, t: self.samples.append((v, t)),
            on_change=self.changes.append,
        )

    def markers(self, label: str | None = None):
        out = []
        for e in self.events:
            if e.source == "protocol" and (label is None or e.label == label):
                value = json.loads(e.value) if e.value.startswith("{") else e.value
                out.append((e.label, e.timestamp, value))
        return out

    def phase_starts(self):
        return [(v["phase"], v["memory"], t) for _, t, v in self.markers("phase_start")]

    def where(self, source: str, label: str):
        return [e for e in self.events if e.source == source and e.label == label]


def run_first_memory(h: Harness, t0: float = 100.0) -> None:
    e = h.engine
    e.start(t0)
    e.key_down("space", t0 + 2.0)
    e.key_up("space", t0 + 2.1)


def test_phase_sequence_and_exact_timestamps_from_injected_times():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    # ticks arrive late and irregularly; phases still end at start + duration
    for t in (105.0, 112.7, 113.3, 115.9, 130.0, 135.55):
        e.tick(t)
    assert h.phase_starts() == [
        ("hello", None, 100.0),
        ("rest", None, 102.0),  # the key press ended the instructions at its own time
        ("cue", "m1", 112.0),
        ("recall", "m1", 115.0),
        ("describe", "m1", 135.0),
    ]
    ends = h.markers("phase_end")
    assert [(v["phase"], t, v["reason"]) for _, t, v in ends] == [
        ("hello", 102.0, "key"),
        ("rest", 112.0, "time"),
        ("cue", 115.0, "time"),
        ("recall", 135.0, "time"),
    ]
    assert h.markers()[0][0] == "session_start"
    d = e.display(136.0)
    assert (d.kind, d.memory_id, d.cue, d.expects) == ("description", "m1", "the lake", "text")
    assert d.elapsed == pytest.approx(1.0)
    assert d.remaining is None and d.can_continue is False  # min_duration 4 s


def test_display_countdown_and_expected_inputs():
    h = Harness()
    e = h.engine
    assert e.display().state == "ready"
    e.start(0.0)
    d = e.display()
    assert (d.expects, d.continue_key, d.remaining) == ("continue_key", "space", None)
    e.key_down("space", 1.0)
    d = e.tick(4.5)
    assert (d.kind, d.phase.eyes, d.remaining) == ("baseline", "closed", pytest.approx(6.5))
    d = e.tick(14.0)  # recall of m1 started at 14.0
    assert (d.kind, d.expects, d.valence_mode, d.positive_key) == (
        "recall",
        "valence_keys",
        "discrete",
        "1",
    )
    assert d.remaining == pytest.approx(20.0)
    assert [c.kind for c in h.changes] == ["instructions", "baseline", "cue", "recall"]


def test_submit_before_min_duration_ends_the_phase_at_min_duration():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(135.0)  # description starts at 135
    assert e.submit_description("tiny", 136.0) is False  # shorter than min_chars: refused
    assert not any(isinstance(r, DescriptionSubmitted) for r in h.records)
    assert e.submit_description("a quiet lake at dawn", 136.5) is True
    assert e.current.phase.id == "describe"  # min_duration (4 s) not reached
    e.tick(138.9)
    assert e.current.phase.id == "describe"
    e.tick(139.2)
    assert e.current.phase.id == "sam"
    end = [v for _, t, v in h.markers("phase_end") if v["phase"] == "describe"]
    assert end[0]["reason"] == "submit"
    assert h.phase_starts()[-1] == ("sam", "m1", 139.0)
    desc = [r for r in h.records if isinstance(r, DescriptionSubmitted)]
    assert desc == [DescriptionSubmitted("m1", "a quiet lake at dawn", 136.5)]


def test_sam_phase_ends_when_all_scales_are_rated_or_on_timeout():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(135.0)
    e.submit_description("a quiet lake at dawn", 140.0)
    e.tick(140.0)
    assert e.display().sam_pending == ("valence", "arousal")
    e.rate_sam("valence", 7, 141.0)
    assert e.display().sam_pending == ("arousal",)
    e.rate_sam("arousal", 4, 142.5)
    assert e.current.memory_id == "m2" and e.current.phase.id == "cue"
    assert [(x.label, x.value) for x in h.events if x.label.startswith("sam_")] == [
        ("sam_valence", "7"),
        ("sam_arousal", "4"),
    ]
    with pytest.raises(ValueError, match="1-9"):
        e.rate_sam("valence", 10, 143.0)
    # second memory: nobody rates, the SAM phase times out after max_duration
    e.tick(145.5 + 20.0)  # cue 142.5-145.5, recall -165.5
    e.submit_description("an empty platform", 170.0)
    e.tick(200.0)
    ends = h.markers("phase_end")
    sam2 = [(t, v["reason"]) for _, t, v in ends if v["phase"] == "sam" and v["memory"] == "m2"]
    assert sam2 == [(178.0, "timeout")]  # started at 170 (min_duration reached), +8 s
    assert e.state == "finished" and e.done
    assert h.markers()[-1][0] == "session_end"
    assert h.markers()[-1][2] == {"reason": "completed"}


def test_pause_extends_the_phase_and_is_marked():
    h = Harness()
    e = h.engine
    run_first_memory(h)  # rest runs 102-112
    e.pause(105.0)
    e.tick(120.0)
    assert e.state == "paused" and e.current.phase.id == "rest"
    assert e.display(120.0).elapsed == pytest.approx(3.0)
    e.resume(121.0)  # 16 s of pause: rest now ends at 128
    e.tick(127.9)
    assert e.current.phase.id == "rest"
    e.tick(128.1)
    assert e.current.phase.id == "cue"
    assert [(lbl, t) for lbl, t, _ in h.markers() if lbl in ("paused", "resumed")] == [
        ("paused", 105.0),
        ("resumed", 121.0),
    ]
    assert h.phase_starts()[-1] == ("cue", "m1", 128.0)


def test_a_submit_during_a_pause_takes_effect_at_resume():
    h = Harness()
    e = h.engine
    e.start(0.0)
    e.pause(1.0)
    e.key_down("space", 2.0)  # recorded, but the instructions stay on while paused
    assert e.current.phase.id == "hello" and e.state == "paused"
    assert json.loads(h.events[-1].value)["key"] == "space"
    e.resume(5.0)
    assert e.current.phase.id == "rest"
    labels = [(lbl, t) for lbl, t, _ in h.markers()][-4:]
    assert labels == [("paused", 1.0), ("resumed", 5.0), ("phase_end", 5.0), ("phase_start", 5.0)]


def test_skip_and_abort():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.skip(104.0)
    assert h.phase_starts()[-1] == ("cue", "m1", 104.0)
    reasons = [v["reason"] for _, _, v in h.markers("phase_end")]
    assert reasons[-1] == "skip"
    e.tick(107.5)  # recall started at 107
    e.abort(110.0, reason="participant unwell")
    assert e.state == "aborted" and e.done and e.current is None
    last_end = h.markers("phase_end")[-1]
    assert (last_end[1], last_end[2]["phase"], last_end[2]["reason"]) == (110.0, "recall", "abort")
    label, t, value = h.markers()[-1]
    assert (label, t, value["reason"], value["detail"]) == (
        "session_end",
        110.0,
        "aborted",
        "participant unwell",
    )
    n = len(h.events)
    e.tick(500.0)  # nothing happens after an abort
    assert len(h.events) == n


def test_key_events_are_pairs_and_repeats_are_counted_not_recorded():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(115.0)  # recall of m1 from 115
    e.key_down("1", 116.0)
    e.key_down("1", 116.6, auto_repeat=True)
    e.key_down("1", 116.64)  # X11 and Qt do not always flag a repeat: still one press
    e.key_up("1", 117.0)
    e.key_down("x", 118.0)
    e.key_up("x", 118.1)
    keys = [
        json.loads(x.value) | {"t": x.timestamp, "label": x.label}
        for x in h.events
        if x.source == "keyboard" and x.timestamp >= 116.0
    ]
    assert keys == [
        {"key": "1", "valence": "positive", "phase": "recall", "t": 116.0, "label": "key_down"},
        {"key": "1", "valence": "positive", "phase": "recall", "repeats": 2,
         "t": 117.0, "label": "key_up"},
        {"key": "x", "valence": None, "phase": "recall", "t": 118.0, "label": "key_down"},
        {"key": "x", "valence": None, "phase": "recall", "repeats": 0,
         "t": 118.1, "label": "key_up"},
    ]  # fmt: skip
    assert not h.where("participant", "valence_state")[1:]  # neutral is not known before 119
    e.tick(120.0)
    states = [(x.timestamp, x.value) for x in h.where("participant", "valence_state")]
    assert states == [(116.0, "positive"), (119.0, "neutral")]


def test_a_lost_key_up_does_not_swallow_the_next_press():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(115.0)
    e.key_down("1", 116.0)
    e.key_down("1", 116.6, auto_repeat=True)
    # the key up never arrived (a device hiccup); 2 s later the key goes down again
    e.key_down("1", 118.6)
    e.key_up("1", 118.7)
    downs = h.where("keyboard", "key_down")[-2:]
    ups = [json.loads(x.value) | {"t": x.timestamp} for x in h.where("keyboard", "key_up")]
    assert [x.timestamp for x in downs] == [116.0, 118.6]
    assert ups[-2]["released_by"] == "missing_key_up" and ups[-2]["t"] == 116.6
    assert ups[-1]["t"] == 118.7 and "released_by" not in ups[-1]


def test_unpaired_and_stale_keys_are_not_recorded():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(115.0)
    n = len(h.where("keyboard", "key_down"))
    e.key_up("3", 115.5)  # went down before the engine saw it: no lone key_up
    e.key_down("1", 115.6, auto_repeat=True)  # held since before: not a press
    e.key_down("1", 115.7, auto_repeat=True)
    e.key_up("1", 115.8)
    assert len(h.where("keyboard", "key_down")) == n
    assert len(h.where("keyboard", "key_up")) == n
    assert not h.where("participant", "valence_state")[1:]


def test_a_key_held_across_a_phase_boundary_is_released_there_and_never_typed():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(115.0)
    e.key_down("3", 134.0)  # held as the recall ends at 135
    for t in np.arange(134.5, 137.0, 0.04):
        e.key_down("3", float(t), auto_repeat=True)
    e.key_up("3", 137.2)  # released in the description phase
    downs, ups = h.where("keyboard", "key_down"), h.where("keyboard", "key_up")
    assert len(downs) == len(ups)
    last = json.loads(ups[-1].value)
    assert ups[-1].timestamp == 135.0
    assert last["released_by"] == "phase_end" and last["phase"] == "recall"
    assert last["repeats"] == 13  # the repeats before 135; later ones are ignored
    states = [(x.timestamp, x.value) for x in h.where("participant", "valence_state")]
    assert states[-1] == (135.0, "neutral") or states[-1][0] <= 135.0


def test_keys_typed_in_a_description_are_text_not_events():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(135.5)  # description of m1
    n = len([x for x in h.events if x.source == "keyboard"])
    for i, ch in enumerate("my lake"):
        e.key_down(ch if ch != " " else "space", 136.0 + i * 0.2)
        e.key_up(ch if ch != " " else "space", 136.05 + i * 0.2)
    e.draft_description("my lake", 137.5)
    assert len([x for x in h.events if x.source == "keyboard"]) == n


def test_description_drafts_are_stored_and_kept_at_timeout():
    text = PROTOCOL.replace(
        "{id: describe, kind: description, min_chars: 5, min_duration: 4}",
        "{id: describe, kind: description, min_chars: 5, max_duration: 30}",
    )
    h = Harness(text)
    e = h.engine
    e.draft_interval = 1.0
    run_first_memory(h)
    e.tick(135.5)
    e.draft_description("The", 136.0)
    e.tick(136.1)
    e.draft_description("The lake", 136.4)
    e.tick(136.5)  # less than 1 s after the last stored draft: not yet
    e.draft_description("The lake at dawn", 136.9)
    e.tick(137.2)
    drafts = [r for r in h.records if isinstance(r, DescriptionSubmitted)]
    assert [(r.text, r.submitted) for r in drafts] == [
        ("The", False),
        ("The lake at dawn", False),
    ]
    e.draft_description("The lake at dawn, cold", 150.0)
    e.tick(166.0)  # max_duration: the phase times out without Submit
    drafts = [r for r in h.records if isinstance(r, DescriptionSubmitted)]
    assert (drafts[-1].text, drafts[-1].submitted) == ("The lake at dawn, cold", False)
    (ev,) = h.where("participant", "description_unsubmitted")
    assert json.loads(ev.value) == {"memory": "m1", "chars": 22, "reason": "timeout"}
    assert ev.timestamp == 165.0


def test_an_input_after_a_deadline_belongs_to_the_next_phase():
    h = Harness()
    e = h.engine
    run_first_memory(h)
    e.tick(111.99)  # the rest phase ends at 112; no tick has seen it yet
    e.key_down("1", 112.5)
    ev = h.events[-1]
    assert json.loads(ev.value)["phase"] == "cue"
    assert h.phase_starts()[-1] == ("cue", "m1", 112.0)


def test_continue_key_ignores_auto_repeat_and_other_keys():
    h = Harness()
    e = h.engine
    e.start(0.0)
    e.key_down("a", 1.0)
    e.key_down("space", 1.5, auto_repeat=True)  # held since before: not a press
    assert e.current.phase.id == "hello"
    e.key_up("space", 1.6)
    e.key_down(" ", 2.0)  # Qt's text for the space bar
    assert e.current.phase.id == "rest"


def test_memory_records_for_sketch_melody_and_memory_start():
    text = """\
version: 1
name: t
memories: [{id: m1, cue: the lake}]
phases:
  - id: each
    kind: repeat
    phases:
      - {id: sketch, kind: sketch, width: 320, height: 200}
      - {id: melody, kind: melody, sources: [microphone]}
"""
    h = Harness(text)
    e = h.engine
    e.start(10.0)
    assert h.records[0] == MemoryStarted("m1", "the lake", 0, 10.0)
    pts = np.zeros(3, dtype=STROKE_DTYPE)
    pts["timestamp"] = [10.5, 10.6, 10.7]
    e.add_sketch_points(pts)
    e.finish_sketch(b"\x89PNG...", 11.0, width=320, height=200)
    assert e.current.phase.id == "melody"
    e.add_melody_audio(np.zeros(16000), sample_rate=32000, origin="microphone",
                       start_timestamp=11.5)  # fmt: skip
    e.add_melody_audio(np.zeros(16000), sample_rate=32000, origin="microphone",
                       start_timestamp=11.5)  # fmt: skip
    e.finish_melody(13.0, origin="microphone")
    assert e.state == "finished"
    kinds = [type(r) for r in h.records]
    assert kinds == [MemoryStarted, SketchPoints, SketchFinished, MelodyAudio, MelodyAudio]
    sub = [json.loads(x.value) for x in h.where("participant", "sketch_submitted")]
    assert sub == [{"memory": "m1", "points": 3, "width": 320, "height": 200}]
    mel = [json.loads(x.value) for x in h.where("participant", "melody_submitted")]
    assert mel == [{"memory": "m1", "origin": "microphone", "seconds": 1.0}]


def test_starting_twice_is_a_programming_error():
    h = Harness()
    h.engine.start(0.0)
    with pytest.raises(RuntimeError):
        h.engine.start(1.0)
