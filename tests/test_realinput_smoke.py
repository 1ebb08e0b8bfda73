"""The real app, driven by a person's mouse and keyboard, records their key presses on time.

``recall-lab app`` runs unchanged on Xvfb under openbox; the test clicks and presses keys only
through the X server (XTEST), as a person does (``tests/realinput``). The file must hold each
press as a ``keyboard`` ``key_down``/``key_up`` pair stamped within a few ms of the moment the
key was injected (LSL clock, read just before each injection; see ``Press.check``).
"""

from __future__ import annotations

import pytest
from realinput.recorded import key_events

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def test_valence_keys_pressed_on_the_participant_display_are_recorded(real_app):
    app = real_app(participant="P042", protocol="demo", time_scale=0.2)
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    app.wait_phase("recall")

    app.click_window("participant")  # the participant's display gets the keyboard
    assert "participant" in (app.focus()["active_window"] or "")
    one = app.press("1", hold=0.3)
    three = app.press("3", hold=0.2)

    path = app.stop_recording_and_wait()
    assert path.parent == app.out_dir and path.name.startswith("sub-P042_ses-01_task-demo_run-01")
    events = key_events(path)
    expected = [
        ("key_down", "1", "positive", one),
        ("key_up", "1", "positive", one),
        ("key_down", "3", "negative", three),
        ("key_up", "3", "negative", three),
    ]
    got = [(label, v["key"], v["valence"]) for label, v, _ in events]
    assert got == [e[:3] for e in expected], f"keyboard events in the file: {events}"
    for (label, value, t), (_, _, _, press) in zip(events, expected):
        assert value["phase"] == "recall" and not value.get("auto_repeat", False)
        # Stamped when the key went down/up (X server time), within a few ms of injection.
        sent = press.down if label == "key_down" else press.up
        print(f"{label} {press.key}: file - injection = {(t - sent) * 1000:+.2f} ms")
        late = press.check(label, t)
        assert not late, late


def test_a_confirmation_is_answered_with_a_click(real_app):
    app = real_app(participant="P042", protocol="demo", time_scale=0.2)
    app.click("Record")
    app.click("Start protocol")
    app.wait_until(lambda: app.state()["runner"], 10, what="the protocol running")

    app.click("Abort")
    assert app.answer("No"), "Abort asks for confirmation"
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the dialog closed")
    assert app.state()["engine"]["state"] == "running"

    app.click("Abort")
    dialog = app.wait_until(lambda: app.state()["modal"], 5, what="the confirmation")
    assert app.find("Yes", window=dialog["title"])["visible"]
    app.click("Yes", window=dialog["title"])
    app.wait_until(
        lambda: app.state()["engine"] is None or app.state()["engine"]["state"] == "aborted",
        10,
        what="the protocol aborted",
    )
