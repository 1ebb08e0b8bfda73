"""The experimenter's console under real use: controls that could lose data ask first, and a
new session never inherits the last participant's pseudonym.

The real app on Xvfb under openbox, driven through XTEST and xdotool (``tests/realinput``).
"""

from __future__ import annotations

import json

import pytest
from realinput.recorded import closed_session

pytestmark = [pytest.mark.gui, pytest.mark.timeout(150)]


def test_stop_during_a_protocol_asks_and_no_keeps_everything_running(real_app):
    app = real_app(participant="P042", protocol="demo", time_scale=0.2)
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    app.wait_until(lambda: app.state()["runner"], 10, what="the protocol running")

    app.click("Stop")
    assert app.answer("No"), "Stop in the middle of a protocol must ask first"
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the dialog closed")
    st = app.state()
    assert st["recording"] and st["runner"] and st["engine"]["state"] == "running"

    path = app.stop_recording_and_wait(confirm="Yes")
    ends = [e for e in closed_session(path).events if e.label == "session_end"]
    assert ends and "abort" in ends[-1].value


def test_each_session_starts_with_no_pseudonym_and_reusing_one_asks(real_app):
    app = real_app(participant=None, protocol="none")
    app.connected()
    assert app.text("Participant pseudonym") == ""  # nothing left from an earlier session

    app.click("Participant pseudonym")
    app.type_text("P042")
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    first = app.stop_recording_and_wait()
    assert first.name == "sub-P042_ses-01_task-rest_run-01_eeg.h5"
    assert app.text("Participant pseudonym") == "", "the next session starts blank"

    app.click("Participant pseudonym")
    app.type_text("P042")
    app.click("Record")
    modal = app.wait_until(lambda: app.state()["modal"], 5, what="a warning about P042")
    assert "P042" in modal["text"] and first.name in modal["text"]
    app.answer("No")
    app.wait_until(lambda: app.state()["modal"] is None, 5, what="the dialog closed")
    assert not app.state()["recording"]

    app.click("Record")
    app.answer("Yes")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording after confirming")
    second = app.stop_recording_and_wait()
    assert second.name == "sub-P042_ses-01_task-rest_run-02_eeg.h5"  # same day: next run


def test_nothing_of_an_old_source_or_session_stays_on_screen(real_app):
    app = real_app(participant="P042", protocol="demo", time_scale=0.2)
    app.connected()
    app.wait_until(lambda: app.text("Channel quality") not in ("", "–"), 15, what="quality")
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")
    app.click("Start protocol")
    app.wait_until(lambda: app.text("Phase") not in ("", "–"), 10, what="a phase shown")
    app.stop_recording_and_wait(confirm="Yes")
    assert app.text("Phase") not in ("", "–")  # how the last session ended, until the next

    app.click("Participant pseudonym")
    app.type_text("P043")
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="the next recording")
    assert app.text("Phase") == "–", "the new recording shows the old session's phase"
    app.stop_recording_and_wait()

    app.click("Disconnect")
    app.wait_until(lambda: not app.state()["connected"], 10, what="disconnected")
    app.settle(1.0)  # a few status refreshes
    assert app.text("Channel quality") == "–"
    assert app.text("Signal rate") == "–"
    assert "connected:" not in (app.text("Status bar") or "")


def test_notes_and_markers_during_a_recording_are_timestamped_events(real_app):
    app = real_app(participant="P042", protocol="none")
    app.connected()
    app.click("Session notes")
    app.type_text("cap size 56")
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")

    app.click("Note")
    t0 = app.key_down("Shift_L")  # just before the note's first key (LSL clock)
    app.key_up("Shift_L")
    app.type_text("T7 loose")
    app.press("Return")
    app.settle(0.5)
    app.click("Marker")
    app.settle(0.3)
    app.click("Note")
    app.type_text("participant coughed")  # never confirmed with Enter: Stop keeps it
    path = app.stop_recording_and_wait()

    s = closed_session(path)
    assert s.attrs["notes"] == "cap size 56"
    notes = [e for e in s.events if e.source == "experimenter" and e.label == "note"]
    texts = [json.loads(e.value)["text"] for e in notes]
    assert texts == ["T7 loose", "participant coughed"], texts
    first = notes[0]
    # Stamped when its typing began, with the time it was added beside it.
    assert t0 <= first.timestamp < t0 + 1.0
    assert json.loads(first.value)["added"] >= first.timestamp
    markers = [e for e in s.events if e.source == "experimenter" and e.label == "marker"]
    assert [m.value for m in markers] == ["1"]
    assert first.timestamp < markers[0].timestamp < notes[1].timestamp


def test_ctrl_m_sets_a_marker_from_anywhere_in_the_console(real_app):
    """The marker hotkey works while the experimenter is typing a note (the note keeps its
    text: no "m" goes into it) and never before a recording runs."""
    app = real_app(participant="P043", protocol="none")
    app.connected()
    app.key_down("Control_L")  # before Record: nothing to mark, nothing recorded
    app.press("m")
    app.key_up("Control_L")
    app.click("Record")
    app.wait_until(lambda: app.state()["recording"], 15, what="recording")

    app.click("Note")
    app.type_text("eyes closed")
    t0 = app.key_down("Control_L")
    app.press("m")
    app.key_up("Control_L")
    app.settle(0.3)
    assert app.text("Note") == "eyes closed"
    app.press("Return")
    app.settle(0.3)
    app.key_down("Control_L")
    app.press("m")
    app.key_up("Control_L")
    path = app.stop_recording_and_wait()

    s = closed_session(path)
    markers = [e for e in s.events if e.source == "experimenter" and e.label == "marker"]
    assert [m.value for m in markers] == ["1", "2"]
    assert t0 <= markers[0].timestamp < t0 + 1.0
    notes = [e for e in s.events if e.source == "experimenter" and e.label == "note"]
    assert [json.loads(e.value)["text"] for e in notes] == ["eyes closed"]


def test_a_stalled_source_raises_a_banner_and_can_pause_the_protocol(real_app, unique_id):
    from test_app_lsl import CountingOutlet

    sender = CountingOutlet(unique_id, unique_id)
    try:
        app = real_app(
            participant="P042",
            protocol="demo",
            time_scale=0.5,
            source=f"lsl:source_id={unique_id}?stall_timeout=0.5&markers=none",
        )
        app.connected()
        app.click("Pause the protocol when the signal stalls")
        app.click("Record")
        app.wait_until(lambda: app.state()["recording"], 15, what="recording")
        app.click("Start protocol")
        app.wait_until(lambda: app.state()["runner"], 10, what="the protocol running")
        assert app.text("Stall banner") == ""

        sender.close()  # the amplifier's program stops
        banner = app.wait_until(
            lambda: (app.text("Stall banner") or "") or None, 5, what="the stall banner"
        )
        assert banner.startswith("NO SIGNAL") and "paused" in banner, banner
        app.wait_until(
            lambda: app.state()["engine"]["state"] == "paused", 5, what="the protocol paused"
        )

        sender = CountingOutlet(unique_id, unique_id)  # it comes back (same source_id)
        app.wait_until(lambda: app.text("Stall banner") == "", 15, what="the banner gone")
        assert app.state()["engine"]["state"] == "paused"  # resuming is the experimenter's
        path = app.stop_recording_and_wait(confirm="Yes")
        events = closed_session(path).events
        assert [e for e in events if e.label == "protocol_paused_on_stall"]
        assert [e for e in events if e.label == "gap_start"]
        assert [e for e in events if e.label == "gap_end"]
    finally:
        sender.close()


def test_the_spectrum_view_opens_beside_the_traces_and_is_remembered(real_app):
    app = real_app(participant=None, protocol="none")
    app.connected()
    assert not app.find("Spectrum")["visible"]
    app.click("Show spectrum")
    summary = app.wait_until(
        lambda: (t := app.text("Spectrum summary")) and "strongest line" in t and t,
        10,
        what="a spectrum",
    )
    assert summary.startswith("Welch,")
    traces, spectrum = app.find("Scope traces"), app.find("Spectrum")
    assert spectrum["visible"] and spectrum["rect"][0] > traces["rect"][0]  # beside them
    app.close()  # the console quits, as a person closes it
    settings = str(app.workdir / "settings.ini")
    again = real_app(participant=None, protocol="none", extra_args=("--settings", settings))
    again.connected()
    assert again.find("Spectrum")["visible"]


def test_the_lsl_list_tells_streams_apart_and_connects_to_the_chosen_one(real_app, unique_id):
    from test_app_lsl import SineOutlet

    sender = SineOutlet(unique_id)
    try:
        app = real_app(participant=None, protocol="none")
        app.connected()
        app.click("Disconnect")
        app.click("Source kind")  # the list opens; a person types to pick an entry
        app.type_text("LSL")
        app.press("Return")
        app.wait_until(lambda: app.text("Source kind") == "LSL stream", 5, what="LSL chosen")
        app.click("Refresh")
        ours = f"{unique_id} (EEG, 4 ch, 250 Hz, float32, on "
        entries = app.wait_until(
            lambda: [
                e for e in app.request("items", name="LSL stream") or [] if e.startswith(ours)
            ],
            15,
            what="our stream listed",
        )
        assert entries[0].endswith(")") and len(entries) == 1
        app.click("LSL stream")
        n = len(app.request("items", name="LSL stream"))
        for _ in range(n):
            app.press("Up")  # to the first listed stream
        for _ in range(n):
            if app.text("LSL stream") == entries[0]:
                break
            app.press("Down")  # the next one
        assert app.text("LSL stream") == entries[0]
        app.click("Connect")
        app.connected()
        app.wait_until(lambda: "Hz received (nominal 250)" in (app.text("Signal rate") or ""), 10)
    finally:
        sender.close()


def test_recording_into_a_study_folder_files_it_by_participant_and_visit(real_app, tmp_path):
    from app.cli import main

    study = tmp_path / "study"
    assert main(["study", "init", str(study)]) == 0
    app = real_app(participant=None, protocol="none", out_dir=study)
    app.connected()
    for n in range(2):
        app.click("Participant pseudonym")
        app.type_text("P-07")
        app.click("Record")
        if n:  # P-07 already has a session in the study
            modal = app.wait_until(lambda: app.state()["modal"], 5, what="the warning")
            assert "sub-P07_ses-01_task-rest_run-01_eeg.h5" in modal["text"]
            app.answer("Yes")
        app.wait_until(lambda: app.state()["recording"], 15, what="recording")
        path = app.stop_recording_and_wait()
    assert path == study / "sub-P07/ses-01/sub-P07_ses-01_task-rest_run-02_eeg.h5"
    assert (study / "sub-P07/ses-01/sub-P07_ses-01_task-rest_run-01_eeg.h5").is_file()
    assert closed_session(path).participant_id == "P-07"
