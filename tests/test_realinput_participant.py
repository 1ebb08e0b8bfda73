"""What a participant produces survives real use: held keys, typing, timeouts, the display.

Each test is one symptom a new user found with the real app on a virtual display (issue 8),
reproduced the way it happened: the real app (``recall-lab app``) on Xvfb with openbox, input
only through XTEST (keys) and xdotool (mouse), focus moved by clicks (``tests/realinput``).
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
from realinput.recorded import closed_session, key_events

pytestmark = [pytest.mark.gui, pytest.mark.timeout(150)]

#: A short protocol of one memory, in real seconds (time scale 1).
RIG_PROTOCOL = """\
version: 1
name: rig
valence: {mode: discrete, positive_key: "1", negative_key: "3", neutral_after: 2.0}
memories: [{id: m1, cue: A walk by the lake}]
phases:
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, duration: RECALL}
      - {id: description, kind: description, max_duration: 6}
      - {id: sketch, kind: sketch, max_duration: 5}
      - {id: melody, kind: melody, melody_dir: melodies, max_duration: 30}
"""


def rig_app(real_app, tmp_path, *, recall: float = 6.0, extra_args: tuple[str, ...] = ()):
    proto = tmp_path / "rig.yaml"
    proto.write_text(RIG_PROTOCOL.replace("RECALL", str(recall)))
    (tmp_path / "melodies").mkdir(exist_ok=True)
    app = real_app(protocol=str(proto), time_scale=1.0, extra_args=extra_args)
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")  # the console has the focus from here on
    return app


def phase_span(s, phase: str) -> tuple[float, float]:
    start = end = None
    for e in s.events_where(source="protocol"):
        if e.label in ("phase_start", "phase_end") and json.loads(e.value)["phase"] == phase:
            if e.label == "phase_start":
                start = e.timestamp
            else:
                end = e.timestamp
    return start, end


def test_a_held_valence_key_is_one_press(real_app, tmp_path):
    # Symptom 2: one 4 s hold of key 3 gave 39 key_down marked as new presses and 84 key_up.
    app = rig_app(real_app, tmp_path, recall=8.0)
    app.wait_phase("recall")
    press = app.press("3", hold=4.0)
    app.wait_phase("description")
    s = closed_session(app.stop_recording_and_wait())
    events = key_events(s, "3")
    downs = [(v, t) for label, v, t in events if label == "key_down"]
    ups = [(v, t) for label, v, t in events if label == "key_up"]
    assert len(downs) == 1 and len(ups) == 1, f"a 4 s hold must be one press: {events}"
    (down, t_down), (up, t_up) = downs[0], ups[0]
    assert down["valence"] == "negative" and up["valence"] == "negative"
    assert up["repeats"] > 20, "the X server auto-repeats a 4 s hold; the repeats are counted"
    assert "released_by" not in up
    late = press.check("key_down", t_down) or press.check("key_up", t_up)
    assert not late, late
    states = [e.value for e in s.events_where(source="participant", label="valence_state")]
    assert states.count("negative") == 1


def test_a_key_held_as_recall_ends_never_types_into_the_description(real_app, tmp_path):
    # Symptom 3: a valence key held as the recall ended typed "1111...3333" into the
    # description box, and that text was saved as the participant's description.
    app = rig_app(real_app, tmp_path, recall=5.0)
    recall = app.wait_phase("recall")
    remaining = app.state()["engine"]["remaining"] or recall.get("remaining") or 5.0
    time.sleep(max(0.0, remaining - 1.0))
    app.key_down("1")
    try:
        app.wait_phase("description")
        time.sleep(1.5)  # still held: the keyboard auto-repeats into the new phase
    finally:
        app.key_up("1")
    app.settle()
    app.type_text("calm water")  # the console still has the focus: typing reaches the box
    app.settle()
    assert app.text("Description") == "calm water"
    app.click("Submit", window="participant display")
    app.wait_phase("sketch")
    s = closed_session(app.stop_recording_and_wait())
    m1 = s.memories["m1"]
    assert m1.description == "calm water" and m1.description_submitted
    ones = key_events(s, "1")
    assert [label for label, _, _ in ones] == ["key_down", "key_up"]
    _, up, t_up = ones[1]
    _, recall_end = phase_span(s, "recall")
    assert up["released_by"] == "phase_end" and t_up == recall_end
    assert up["phase"] == "recall"


def test_typed_text_is_never_a_key_event(real_app, tmp_path):
    # Symptom 4: every character typed into the description was logged as an unpaired
    # key_up event; the text is the participant's memory and must only be the description.
    app = rig_app(real_app, tmp_path)
    app.wait_phase("description")
    app.click_window("participant display")
    app.type_text("a quiet lake")
    app.press("BackSpace")
    app.type_text("e at dawn")
    app.settle()
    app.click("Submit", window="participant display")
    app.wait_phase("sketch")
    s = closed_session(app.stop_recording_and_wait())
    assert s.memories["m1"].description == "a quiet lake at dawn"
    start, end = phase_span(s, "description")
    during = [(label, v) for label, v, t in key_events(s) if start <= t <= end]
    assert during == [], f"typing was logged as key events: {during}"
    labels = [label for label, _, _ in key_events(s)]
    assert labels.count("key_down") == labels.count("key_up")


def test_what_was_written_and_drawn_is_kept_when_time_runs_out(real_app, tmp_path):
    # Symptom 5: a description typed but not submitted before max_duration was lost; an
    # unsubmitted sketch kept its strokes but no PNG.
    from PIL import Image

    app = rig_app(real_app, tmp_path)
    app.wait_phase("description")
    app.click_window("participant display")
    app.type_text("the boat was red")
    app.wait_phase("sketch", timeout=15)  # max_duration 6 s: no Submit
    canvas = app.find("Sketch canvas")
    x, y, w, h = canvas["rect"]
    app.drag([(x + w // 4 + i * 12, y + h // 3 + i * 6) for i in range(15)])
    app.wait_phase("melody", timeout=15)  # max_duration 5 s: no Submit
    s = closed_session(app.stop_recording_and_wait())
    m1 = s.memories["m1"]
    assert m1.description == "the boat was red" and m1.description_submitted is False
    (ev,) = s.events_where(source="participant", label="description_unsubmitted")
    assert json.loads(ev.value)["reason"] == "timeout"
    assert m1.sketch_strokes is not None and len(m1.sketch_strokes) >= 10
    assert m1.sketch_png is not None and m1.sketch_submitted is False
    img = np.asarray(Image.open(io.BytesIO(m1.sketch_png)).convert("L"))
    assert (img < 128).sum() > 20, "the stored PNG shows the stroke drawn"
    (ev,) = s.events_where(source="participant", label="sketch_unsubmitted")
    assert json.loads(ev.value)["reason"] == "timeout"


def _intersects(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_participant_display_beside_the_console_closable_and_reopenable(real_app, tmp_path):
    # Symptom 6: the participant window opened over the console with its title bar
    # off-screen, could be closed mid-protocol without a prompt or a log entry, and could not
    # be reopened.
    app = real_app(protocol="demo", time_scale=0.2)
    screen = (0, 0, *app.x.size)

    def frames() -> dict[str, list[int]]:
        wins = {w["title"]: w["frame"] for w in app.windows()}
        return {
            "console": wins["recall-lab: experimenter console"],
            "participant display": wins["recall-lab: participant display"],
        }

    def on_screen(f: list[int]) -> bool:
        fx, fy, fw, fh = f
        return fx >= 0 and fy >= 0 and fx + fw <= screen[2] and fy + fh <= screen[3]

    # A person looks once the windows have settled: placed, framed by the window manager and
    # still for half a second.
    def settled() -> dict[str, list[int]] | None:
        first = frames()
        time.sleep(0.5)
        second = frames()
        return second if first == second and all(map(on_screen, second.values())) else None

    try:
        placed = app.wait_until(settled, 8, what="windows placed")
    except AssertionError:
        placed = frames()  # reported below
    for name, f in placed.items():
        assert on_screen(f), f"the {name}'s frame {f} (title bar included) must be on the screen"
    console, part = placed["console"], placed["participant display"]
    assert not _intersects(console, part), f"it hides the console: {part} over {console}"

    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    app.wait_phase("recall")
    app.close_window("recall-lab: participant display")
    modal = app.wait_until(lambda: app.state()["modal"], 5, what="a question")
    assert "participant display" in modal["title"].lower()
    app.answer("Yes")
    app.wait_until(lambda: not app.state()["participant_visible"], 5, what="display closed")
    assert app.state()["engine"]["state"] == "running"  # the protocol goes on
    app.click("Show participant display")
    app.wait_until(lambda: app.state()["participant_visible"], 5, what="display shown again")
    app.wait_phase("recall")
    app.press("1", hold=0.15)
    s = closed_session(app.stop_recording_and_wait())
    closed = s.events_where(source="app", label="participant_display_closed")
    shown = s.events_where(source="app", label="participant_display_shown")
    assert len(closed) == 1 and json.loads(closed[0].value)["phase"] == "recall"
    assert shown and shown[-1].timestamp > closed[0].timestamp
    assert [label for label, _, _ in key_events(s, "1")] == ["key_down", "key_up"]


def test_melody_chooser_opens_in_the_protocol_folder(real_app, tmp_path):
    # Symptom 6: the melody file dialog opened in the experimenter's working directory.
    app = rig_app(real_app, tmp_path, recall=1.0)
    app.wait_phase("description")
    app.click("Submit", window="participant display")  # no min_chars: ends the phase
    app.wait_phase("melody", timeout=20)
    app.click("Choose a melody file", window="participant display")
    modal = app.wait_until(lambda: app.state()["modal"], 5, what="the melody chooser")
    assert modal["directory"] == str((tmp_path / "melodies").resolve())
    assert modal["directory"] != str(app.workdir.resolve())
    app.click("Cancel", window=modal["title"])
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the chooser closed")
    app.stop_recording_and_wait()


def test_participant_keyboard_device_is_read_whatever_has_focus(real_app, tmp_path):
    # The XInput2 keyboard: the participant's keys come from the device with the X server's
    # times, whichever window has focus; the session names the device.
    app = rig_app(
        real_app,
        tmp_path,
        recall=6.0,
        extra_args=("--participant-keyboard", "x11:Virtual core XTEST keyboard"),
    )
    app.wait_phase("recall")
    app.click("Pause")
    app.click("Pause")  # the console has the focus
    presses = [app.press("1", hold=0.15), app.press("3", hold=0.15)]
    s = closed_session(app.stop_recording_and_wait())
    source = json.loads(s.attrs["participant_input"])
    assert source["backend"] == "x11" and "XTEST" in source["device"]
    assert "clock_mapping" in source
    events = [(label, v, t) for label, v, t in key_events(s) if v["key"] in ("1", "3")]
    assert [(label, v["key"]) for label, v, _ in events] == [
        ("key_down", "1"),
        ("key_up", "1"),
        ("key_down", "3"),
        ("key_up", "3"),
    ]
    for press, (_, _, t_down), (_, _, t_up) in zip(presses, events[0::2], events[1::2]):
        late = press.check("key_down", t_down, late=0.002) or press.check(
            "key_up", t_up, late=0.002
        )
        assert not late, late
