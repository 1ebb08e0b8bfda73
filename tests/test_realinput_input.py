"""Participant keys do not depend on where the experimenter last clicked.

A person running a session clicks the console (Pause, Resume, Start protocol): the window
manager then gives the console the keyboard focus. The participant's valence keys must still
reach the protocol, and no key the participant presses may operate a console button. Real app,
real X server, real window manager; input only through XTEST (``tests/realinput``).
"""

from __future__ import annotations

import pytest
from realinput.recorded import key_events

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]


def describe(focus: dict) -> str:
    w = focus["widget"]
    what = "nothing" if w is None else f"{w['class']} {w['text'] or w['accessible_name']!r}"
    return f"{what} in {focus['active_window']!r}"


def changed(before: dict, after: dict) -> str:
    return ", ".join(f"{k}: {before[k]} -> {after[k]}" for k in before if before[k] != after[k])


def start_session(real_app):
    app = real_app(participant="P042", protocol="demo", time_scale=0.2)
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    return app


def test_keys_reach_the_protocol_after_a_console_click(real_app):
    app = start_session(real_app)
    app.wait_phase("recall")
    app.click("Pause")
    app.wait_until(lambda: app.state()["engine"]["state"] == "paused", 5, what="paused")
    app.click("Pause")  # resume
    app.wait_until(lambda: app.state()["engine"]["state"] == "running", 5, what="resumed")
    focus = app.focus()  # the console has the keyboard now, as it would for a person

    presses = [app.press("1", hold=0.2), app.press("1", hold=0.2)]
    assert app.state()["engine"]["kind"] == "recall", "the presses must fall in the recall phase"

    path = app.stop_recording_and_wait()
    valence = [(label, v, t) for label, v, t in key_events(path) if v["key"] == "1"]
    downs = [t for label, v, t in valence if label == "key_down" and v["valence"] == "positive"]
    ups = [t for label, v, t in valence if label == "key_up" and v["valence"] == "positive"]
    assert len(downs) == 2 and len(ups) == 2, (
        f"pressed '1' twice after clicking Pause/Resume on the console; the file has "
        f"{len(downs)} positive key_down and {len(ups)} key_up events ({valence}); the "
        f"keyboard focus was on {describe(focus)}"
    )
    for press, t_down, t_up in zip(presses, downs, ups):
        late = press.check("key_down", t_down) or press.check("key_up", t_up)
        assert not late, late


def console_controls(app) -> dict:
    """What a console button press could change: checked/enabled states, recording, jobs."""
    st = app.state()
    pause = app.find("Pause")
    return {
        "recording": st["recording"],
        "runner": st["runner"],
        "engine_state": st["engine"] and st["engine"]["state"],
        "job_running": st["job_running"],
        "pause_checked": pause["checked"],
        "enabled": {
            name: app.find(name)["enabled"]
            for name in ("Record", "Stop", "Start protocol", "Pause", "Skip phase", "Abort")
        },
        "modal": st["modal"],
    }


def test_space_on_the_console_activates_no_console_button(real_app):
    app = start_session(real_app)
    app.wait_until(lambda: app.state()["runner"], 5, what="the protocol running")
    before = console_controls(app)
    focus = app.focus()
    app.press("space", hold=0.1)
    app.settle()
    after = console_controls(app)
    assert after == before, (
        f"space with focus on {describe(focus)} changed the console: {changed(before, after)}"
    )

    # A console button the experimenter just clicked has the focus: space must not press it.
    app.wait_phase("recall")
    app.click("Pause")
    app.wait_until(lambda: app.state()["engine"]["state"] == "paused", 5, what="paused")
    app.click("Pause")  # resume
    app.wait_until(lambda: app.state()["engine"]["state"] == "running", 5, what="resumed")
    before = console_controls(app)
    focus = app.focus()
    app.press("space", hold=0.1)
    app.settle()
    after = console_controls(app)
    assert after == before, (
        f"space after clicking Pause/Resume (focus on {describe(focus)}) changed the "
        f"console: {changed(before, after)}"
    )
    app.stop_recording_and_wait()
