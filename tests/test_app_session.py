"""The console and participant display on the synthetic board, driven as a user would.

Real BrainFlow synthetic board, real HDF5 file, real Qt (offscreen), the real protocol engine
running the shipped demo protocol at a short time scale. Inputs are injected with QTest; the
LSL time is read just before and after each injection and the file must place the event
between them.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from PyQt6 import QtCore, QtWidgets

from drivers.clock import local_clock

pytestmark = pytest.mark.gui

QtTest = pytest.importorskip("PyQt6.QtTest")
QTest = QtTest.QTest
Qt = QtCore.Qt


@pytest.fixture
def console(qtbot, tmp_path):
    from app.console import ConsoleWindow
    from app.settings import AppSettings

    threads_before = set(threading.enumerate())
    settings = AppSettings(tmp_path / "settings.ini")  # never the user's settings
    settings.set("session/out_dir", str(tmp_path / "sessions"))
    settings.set("session/protocol", "demo")
    settings.set("session/time_scale", 0.2)
    win = ConsoleWindow(settings)
    win.session_panel.participant.setText("P042")
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.controller.recording:
        win.stop_recording()  # so closing the window does not ask
    win.jobs_panel.shutdown()
    win._close_feed()
    win.controller.close()
    win.participant.close()
    # Qt tests fail on dangling threads: everything the console started must be gone.
    qtbot.waitUntil(
        lambda: (
            not [
                t
                for t in set(threading.enumerate()) - threads_before
                if t.is_alive() and t.name not in ("lsl-lookup",)
            ]
        ),
        timeout=10000,
    )


def connect_synthetic(qtbot, console) -> None:
    console.connect_source("synthetic")
    qtbot.waitUntil(
        lambda: console.controller.connected and console.feed is not None, timeout=20000
    )


def test_console_connects_and_scope_shows_signal(qtbot, console):
    connect_synthetic(qtbot, console)
    n_ch = console.controller.source.info.n_channels
    assert console.scope.n_channels == n_ch
    qtbot.waitUntil(lambda: console.scope.frames > 5, timeout=10000)
    # The traces hold the last `window` seconds of the (filtered) signal, and it moves.
    qtbot.waitUntil(lambda: len(console.scope.trace(0)[0]) > 200, timeout=10000)
    x, y = console.scope.trace(0)
    assert x[-1] == pytest.approx(0.0) and x[0] < -0.5
    assert np.std(y) > 0
    # Every channel is drawn in its row: the curves together hold each channel once.
    drawn = sum(
        np.isnan(c.yData).sum() for c in console.scope.curves.values() if c.yData is not None
    )
    assert drawn == n_ch
    console.refresh_status()
    assert "Hz received" in console.display_panel.rate.text()
    # Changing the window keeps the curves and the x range follows.
    console.display_panel.window.setValue(2.0)
    assert console.scope.window == pytest.approx(2.0)
    console.disconnect_source()
    assert console.scope.n_channels == 0 and not console.controller.connected


def _phase(console):
    r = console.runner
    return r.engine.display().kind if r is not None else ""


def wait_phase(qtbot, console, kind, timeout=15000):
    qtbot.waitUntil(lambda: _phase(console) == kind, timeout=timeout)


def press(widget, key, hold=0.03):
    """Key down and up through the widget's window, as the platform delivers keys (the app's
    input filter acts at the window, before any widget; real X input is tested in
    tests/test_realinput_*.py)."""
    widget = widget.windowHandle()
    before = local_clock()
    QTest.keyPress(widget, key)
    after = local_clock()
    QTest.qWait(int(hold * 1000))
    up_before = local_clock()
    QTest.keyRelease(widget, key)
    up_after = local_clock()
    return (before, after), (up_before, up_after)


def test_demo_protocol_end_to_end(qtbot, console, tmp_path):
    import soundfile

    from data_schema.reader import read_session

    connect_synthetic(qtbot, console)
    path = console.start_recording()
    assert path is not None and path.parent == tmp_path / "sessions"
    assert path.name.startswith("sub-P042_ses-01_task-demo_run-01")
    console.start_protocol()
    p = console.participant

    # Instructions wait for space; the key press is recorded too.
    wait_phase(qtbot, console, "instructions")
    press(p, Qt.Key.Key_Space)
    wait_phase(qtbot, console, "recall")

    # Valence keys in the recall phase: stamped in the handler, on the LSL clock.
    pos_down, pos_up = press(p, Qt.Key.Key_1, hold=0.1)
    assert p.valence.valence == "positive"
    neg_down, _ = press(p, Qt.Key.Key_3)

    wait_phase(qtbot, console, "description")
    QTest.keyClicks(p.description, "A sunny day by the water.")
    t_submit = local_clock()
    QTest.mouseClick(p.submit_description, Qt.MouseButton.LeftButton)

    wait_phase(qtbot, console, "sketch")
    c = p.canvas
    t_draw = local_clock()
    QTest.mousePress(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(20, 20))
    for i in range(1, 11):
        QTest.mouseMove(c, QtCore.QPoint(20 + 10 * i, 20 + 5 * i))
    QTest.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(130, 75))
    QTest.mousePress(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(200, 50))
    QTest.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(220, 60))
    QTest.mouseClick(p.undo_button, Qt.MouseButton.LeftButton)  # removes the second stroke
    QTest.mouseClick(p.submit_sketch, Qt.MouseButton.LeftButton)

    wait_phase(qtbot, console, "melody")
    wav = tmp_path / "tune.wav"
    tone = 0.2 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000).astype(np.float32)
    soundfile.write(wav, tone, 16000)
    with qtbot.waitSignal(p.melody.stored, timeout=10000):
        p.melody.load_file(wav)
    QTest.mouseClick(p.melody_done, Qt.MouseButton.LeftButton)

    wait_phase(qtbot, console, "sam")
    QTest.mouseClick(p.sam.scales["valence"].buttons[6], Qt.MouseButton.LeftButton)
    QTest.mouseClick(p.sam.scales["arousal"].buttons[2], Qt.MouseButton.LeftButton)

    # Second memory: the experimenter skips every phase; the protocol then ends and the
    # console closes the file.
    wait_phase(qtbot, console, "cue")
    with qtbot.waitSignal(console.recording_stopped, timeout=60000):
        for kind in ("cue", "recall", "description", "sketch", "melody", "sam"):
            wait_phase(qtbot, console, kind)
            QTest.mouseClick(console.session_panel.skip_button, Qt.MouseButton.LeftButton)
    assert not console.controller.recording

    s = read_session(path)
    assert s.clean_close and s.participant_id == "P042"
    assert "demo" in s.attrs["protocol"]
    assert s.eeg.n_samples > 250 * 5

    keys = [e for e in s.events if e.source == "keyboard"]
    downs = [(e, json.loads(e.value)) for e in keys if e.label == "key_down"]
    one = next((e, v) for e, v in downs if v["key"] == "1")
    three = next((e, v) for e, v in downs if v["key"] == "3")
    assert pos_down[0] <= one[0].timestamp <= pos_down[1]
    assert one[1]["valence"] == "positive" and one[1]["phase"] == "recall"
    assert neg_down[0] <= three[0].timestamp <= neg_down[1]
    assert three[1]["valence"] == "negative"
    up_one = next(e for e in keys if e.label == "key_up" and json.loads(e.value)["key"] == "1")
    assert pos_up[0] <= up_one.timestamp <= pos_up[1]
    # Keys fall inside the recall phase of m1 in the file's own markers.
    starts = {
        (json.loads(e.value)["phase"], json.loads(e.value)["memory"]): e.timestamp
        for e in s.events_where(source="protocol", label="phase_start")
    }
    assert starts[("recall", "m1")] <= one[0].timestamp < starts[("description", "m1")]

    m1 = s.memories["m1"]
    assert m1.description == "A sunny day by the water."
    assert t_submit <= m1.description_timestamp <= local_clock()
    strokes = m1.sketch_strokes
    drawn = strokes[strokes["stroke"] >= 0]
    assert len(drawn) == 1 + 10 + 1 + 2  # press, moves, release; then the undone stroke
    assert np.all(np.diff(strokes["timestamp"]) >= 0)  # in drawing order
    assert drawn["timestamp"][0] >= t_draw
    assert drawn["x"][0] == pytest.approx(20) and drawn["y"][0] == pytest.approx(20)
    assert np.all(drawn["pressure"] == 1.0)
    assert list(strokes["stroke"][strokes["stroke"] < 0]) == [-2]  # the undo
    assert m1.sketch_png[:8] == b"\x89PNG\r\n\x1a\n"
    assert m1.melody is not None and len(m1.melody) == 8000 and m1.melody_rate == 16000
    sam = {e.label: e.value for e in s.events if e.label.startswith("sam_")}
    assert sam == {"sam_valence": "7", "sam_arousal": "3"}
    ends = [json.loads(e.value) for e in s.events_where(source="protocol", label="phase_end")]
    assert {"phase": "cue", "memory": "m2", "reason": "skip"}.items() <= next(
        e for e in ends if e["phase"] == "cue" and e["memory"] == "m2"
    ).items()
    assert s.events_where(source="protocol", label="session_end")


def test_closing_while_recording_asks(qtbot, console):
    connect_synthetic(qtbot, console)
    path = console.start_recording()
    assert path is not None

    def answer(button):
        def click():
            box = QtWidgets.QApplication.activeModalWidget()
            assert isinstance(box, QtWidgets.QMessageBox), box
            box.button(button).click()

        QtCore.QTimer.singleShot(200, click)

    answer(QtWidgets.QMessageBox.StandardButton.No)
    assert console.close() is False  # the experimenter said no: still open and recording
    assert console.controller.recording

    answer(QtWidgets.QMessageBox.StandardButton.Yes)
    assert console.close() is True
    assert not console.controller.recording

    from data_schema.reader import read_session

    s = read_session(path)
    assert s.clean_close and s.eeg.n_samples > 0


def test_keys_without_protocol_are_recorded(qtbot, console):
    from data_schema.reader import read_session

    console.session_panel.protocol.setCurrentText("none")
    connect_synthetic(qtbot, console)
    path = console.start_recording()
    console.show_participant()  # as `recall-lab app` does at start
    (b, a), _ = press(console.participant, Qt.Key.Key_3)
    press(console.participant, Qt.Key.Key_1)
    QTest.qWait(100)  # a release is confirmed once no auto-repeat press follows it
    console.stop_recording()
    s = read_session(path)
    downs = [e for e in s.events if e.label == "key_down"]
    assert json.loads(downs[0].value)["valence"] == "negative"
    assert b <= downs[0].timestamp <= a
    assert json.loads(downs[1].value)["valence"] == "positive"
    ups = [e for e in s.events if e.label == "key_up"]
    assert len(ups) == 2 and all(json.loads(e.value)["repeats"] == 0 for e in ups)


CONTINUOUS_PROTOCOL = """\
version: 1
name: continuous_gui_test
valence: {mode: continuous, positive_key: "1", negative_key: "3", speed: 1.0, rate: 20}
memories: [{id: m1, cue: a bright morning}]
phases:
  - id: each
    kind: repeat
    phases:
      - {id: recall, kind: recall, duration: 3}
"""


def test_continuous_rating_from_the_console_is_recorded_as_a_stream(qtbot, console, tmp_path):
    from data_schema.reader import read_session

    proto = tmp_path / "continuous.yaml"
    proto.write_text(CONTINUOUS_PROTOCOL)
    console.session_panel.protocol.setCurrentText(str(proto))
    console.session_panel.time_scale.setValue(1.0)
    connect_synthetic(qtbot, console)
    path = console.start_recording()
    assert path is not None
    console.start_protocol()
    qtbot.waitUntil(lambda: console.runner is not None, timeout=5000)
    # The protocol (3 s) ends on its own and the console closes the file on a worker.
    with qtbot.waitSignal(console.recording_stopped, timeout=20000):
        QTest.qWait(300)
        held_from = local_clock()
        window = console.participant.windowHandle()
        QTest.keyPress(window, Qt.Key.Key_1)  # hold "positive": the cursor rises
        QTest.qWait(700)
        QTest.keyRelease(window, Qt.Key.Key_1)
        held_to = local_clock()

    s = read_session(path)
    assert "valence" in s.streams, "the continuous rating must be recorded as a stream"
    v = s.streams["valence"]
    assert v.info.nominal_rate == 20.0 and v.n_samples >= 40  # 3 s at 20 Hz, give or take
    assert np.all(np.diff(v.timestamps) > 0)
    values = v.data[:, 0]
    assert values.max() > 0.3  # held ~0.7 s at speed 1.0/s
    before = values[v.timestamps < held_from]
    assert before.size and np.allclose(before, 0.0)  # the cursor starts at neutral
    # the rating stays on the LSL clock of the EEG
    assert s.eeg.timestamps[0] <= v.timestamps[0] and v.timestamps[-1] <= s.eeg.timestamps[-1]
    assert held_to > held_from


def test_stop_button_closes_the_file_off_the_gui_thread(qtbot, console):
    """Stop returns to the event loop at once; the file is closed by a worker, then announced."""
    from data_schema.reader import read_session

    console.session_panel.protocol.setCurrentText("none")
    connect_synthetic(qtbot, console)
    path = console.start_recording()
    QTest.qWait(500)
    with qtbot.waitSignal(console.recording_stopped, timeout=20000) as signal:
        QTest.mouseClick(console.session_panel.stop_button, Qt.MouseButton.LeftButton)
        assert not console.controller.recording  # detached at once; a new one may start
    assert signal.args == [str(path)]
    s = read_session(path)
    assert s.clean_close and s.eeg.n_samples > 50


def test_the_status_refresh_never_waits_on_the_disk(qtbot, console, monkeypatch):
    """A hung network share must not freeze the console: file size and free space shown while
    recording are measured by the recorder thread, never by the GUI thread's status timer."""
    import os
    import shutil

    console.session_panel.protocol.setCurrentText("none")
    connect_synthetic(qtbot, console)
    console.start_recording()
    gui = threading.get_ident()
    on_gui: list[str] = []

    def watch(name, fn):
        def wrapped(*a, **k):
            if threading.get_ident() == gui:
                on_gui.append(name)
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(os, "stat", watch("os.stat", os.stat))
    monkeypatch.setattr(os, "fstat", watch("os.fstat", os.fstat))
    monkeypatch.setattr(shutil, "disk_usage", watch("shutil.disk_usage", shutil.disk_usage))
    for _ in range(5):
        console.refresh_status()  # what the status timer runs
        QTest.qWait(300)
    shown = console.session_panel.progress.text()
    monkeypatch.undo()
    console.stop_recording()
    assert on_gui == [], f"the GUI thread called {sorted(set(on_gui))}"
    assert " MB," in shown or " kB," in shown, shown  # the size is still shown
    assert "0 B free" not in shown, shown


def test_markers_and_phases_are_drawn_on_the_traces_where_they_happened(qtbot, console):
    console.session_panel.protocol.setCurrentText("none")
    connect_synthetic(qtbot, console)
    console.start_recording()
    QTest.qWait(500)
    QTest.mouseClick(console.session_panel.marker_button, Qt.MouseButton.LeftButton)
    clicked = console.controller.source.buffer.latest(1)[1][-1]  # about when it was clicked

    def marker_shown():
        return [(x, lab) for x, lab in console.scope.visible_events() if lab == "marker 1"]

    qtbot.waitUntil(lambda: bool(marker_shown()), timeout=5000)
    QTest.qWait(1000)
    ((x, _),) = marker_shown()
    newest = console.feed.frame.t_end
    # One second later the line sits about one second back on the time axis.
    assert -console.scope.window <= x < 0
    assert abs((newest + x) - clicked) < 0.3
    console.stop_recording()
