"""The console's parts on their own: display filters, quality flags, sketch canvas, settings,
offline jobs, and the ``recall-lab app`` command without a display."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PyQt6 import QtCore, QtGui

from drivers.clock import local_clock

pytestmark = pytest.mark.gui

QTest = pytest.importorskip("PyQt6.QtTest").QTest
Qt = QtCore.Qt
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- scope feed
def test_display_filter_keeps_state_across_chunks():
    """The feed's chunked filtering equals filtering the whole recording at once."""
    from scipy import signal

    from app.scope_feed import DisplayFilter, ScopeFeed
    from drivers.brainflow_source import BrainFlowSource

    src = BrainFlowSource("synthetic")
    src.start()
    try:
        start = src.buffer.count
        feed = ScopeFeed(src, display_filter=DisplayFilter(highpass=1.0, notch=50.0))
        start = feed._pos
        time.sleep(1.5)
        feed.close()
        feed.step()  # whatever arrived after the thread stopped
        shown, ts_shown = feed.buffer.read_since(0)[:2]
        raw, ts_raw, _, lost = src.buffer.read_since(start)
    finally:
        src.stop()
    assert lost == 0 and len(shown) > 250
    n = len(shown)
    np.testing.assert_array_equal(ts_shown, ts_raw[:n])
    sos = DisplayFilter(highpass=1.0, notch=50.0).design(250.0)
    zi = signal.sosfilt_zi(sos)[:, :, None] * raw[0].astype(np.float64)[None, None, :]
    offline, _ = signal.sosfilt(sos, raw[:n].astype(np.float64), axis=0, zi=zi)
    np.testing.assert_allclose(shown, offline, rtol=1e-4, atol=1e-2)
    assert feed.samples_dropped == 0


def test_quality_flags():
    from app.scope_feed import FlagThresholds, compute_flags

    rng = np.random.default_rng(0)
    raw = rng.normal(0, 10, (250, 4)).astype(np.float32)
    raw[:, 1] = 3.0  # flat
    raw[:, 2] = 187_500.0  # railing (saturated amplifier)
    raw[:, 3] *= 50  # noisy
    flags = compute_flags(raw, raw - raw.mean(axis=0), FlagThresholds())
    assert [flags.label(i) for i in range(4)] == ["", "flat", "railing", "noisy"]


# ---------------------------------------------------------------------- input times
def test_x11_timestamps_on_the_lsl_clock():
    from app.keys import input_time, x11_time

    now = 1790.4189  # LSL seconds = CLOCK_MONOTONIC on Linux
    # waited 19 ms in the queue; the event lies in the middle of its millisecond
    assert x11_time(1790_400, now) == pytest.approx(1790.4005)
    # 32-bit wrap-around: the server's counter wrapped, the LSL clock did not.
    big = 2**32 / 1000 + 5.0
    assert x11_time(4_990, big) == pytest.approx(big - 0.0095, abs=1e-6)
    # Not plausible (synthetic events, another clock): the handler's time.
    assert x11_time(12, now) == now
    assert x11_time(0, now) == now
    assert x11_time(1790_500, now) == now  # "after" the handler
    # Offscreen (these tests): always the handler's time.
    e = QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, Qt.Key.Key_1, Qt.KeyboardModifier.NoModifier)
    assert input_time(e, now) == now


# ---------------------------------------------------------------------- sketch canvas
def test_sketch_canvas_mouse_and_tablet(qtbot):
    from app.widgets.sketch import CLEAR_STROKE, SketchCanvas

    c = SketchCanvas()
    qtbot.addWidget(c)
    c.resize(400, 300)
    c.show()
    got: list = []
    c.points_ready.connect(got.extend)
    t0 = local_clock()
    QTest.mousePress(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(10, 10))
    QTest.mouseMove(c, QtCore.QPoint(50, 40))
    QTest.mouseRelease(c, Qt.MouseButton.LeftButton, pos=QtCore.QPoint(90, 70))
    assert [(p[0], p[2], p[3], p[4]) for p in got] == [
        (0, 10, 10, 1.0),
        (0, 50, 40, 1.0),
        (0, 90, 70, 1.0),
    ]
    ts = [p[1] for p in got]
    assert t0 <= ts[0] <= ts[1] <= ts[2] <= local_clock()

    # A tablet pen: pressure is kept, and no duplicate mouse points are produced.
    device = QtGui.QPointingDevice.primaryPointingDevice()

    def tablet(kind, x, y, pressure):
        pos = QtCore.QPointF(x, y)
        e = QtGui.QTabletEvent(
            kind,
            device,
            pos,
            QtCore.QPointF(c.mapToGlobal(pos)),
            pressure,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
            Qt.KeyboardModifier.NoModifier,
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.LeftButton,
        )
        QtCore.QCoreApplication.sendEvent(c, e)

    got.clear()
    tablet(QtCore.QEvent.Type.TabletPress, 100, 100, 0.2)
    tablet(QtCore.QEvent.Type.TabletMove, 120, 110, 0.6)
    tablet(QtCore.QEvent.Type.TabletRelease, 130, 120, 0.9)
    assert [p[0] for p in got] == [1, 1, 1]
    assert [p[4] for p in got] == pytest.approx([0.2, 0.6, 0.9])
    assert len(c.strokes) == 2

    png = c.to_png()
    image = QtGui.QImage.fromData(png, "PNG")
    assert (image.width(), image.height()) == (400, 300)
    assert QtGui.QColor(image.pixel(50, 40)).lightness() < 128  # the line is drawn
    assert QtGui.QColor(image.pixel(300, 250)).lightness() == 255

    got.clear()
    c.clear()
    assert c.strokes == [] and got[0][0] == CLEAR_STROKE
    blank = QtGui.QImage.fromData(c.to_png(), "PNG")
    assert QtGui.QColor(blank.pixel(50, 40)).lightness() == 255


# ---------------------------------------------------------------------- settings
def test_settings_persist_between_runs(qtbot, tmp_path):
    from app.console import ConsoleWindow
    from app.settings import AppSettings

    path = tmp_path / "settings.ini"
    first = ConsoleWindow(AppSettings(path))
    qtbot.addWidget(first)
    first.session_panel.participant.setText("P777")
    first.display_panel.highpass.setValue(0.5)
    first.display_panel.window.setValue(12.0)
    first.source_panel.kind.setCurrentIndex(first.source_panel.kind.findData("brainflow"))
    first.source_panel.board.setText("cyton")
    first.source_panel.params.setText("serial_port=/dev/ttyUSB0")
    assert first.source_panel.spec() == "brainflow:cyton?serial_port=/dev/ttyUSB0"
    first.session_panel.values()
    first.close()

    second = ConsoleWindow(AppSettings(path))
    qtbot.addWidget(second)
    # The pseudonym is the one thing never carried over: each session's is typed anew.
    assert second.session_panel.participant.text() == ""
    assert second.display_panel.highpass.value() == pytest.approx(0.5)
    assert second.scope.window == pytest.approx(12.0)
    assert second.source_panel.current_kind() == "brainflow"
    assert second.source_panel.spec() == "brainflow:cyton?serial_port=/dev/ttyUSB0"
    second.close()


def test_bad_source_is_one_clear_message(qtbot, tmp_path, monkeypatch):
    from PyQt6 import QtWidgets

    from app.console import ConsoleWindow
    from app.settings import AppSettings

    shown: list[str] = []
    # The warning box is modal; record what it would say instead of blocking the test.
    monkeypatch.setattr(
        QtWidgets.QMessageBox, "warning", lambda parent, title, text: shown.append(text)
    )
    win = ConsoleWindow(AppSettings(tmp_path / "s.ini"))
    qtbot.addWidget(win)
    win.connect_source("brainflow:no_such_board")
    qtbot.waitUntil(lambda: bool(shown), timeout=10000)
    assert "\n" not in shown[0] and "no_such_board" in shown[0]
    assert not win.controller.connected
    assert win.source_panel.connect_button.isEnabled()
    win.close()


# ---------------------------------------------------------------------- offline jobs
def test_progress_parsing():
    from app.jobs import parse_progress

    assert parse_progress("decoding:  42%|####      | 42/100") == pytest.approx(0.42)
    assert parse_progress("fold 3/10") == pytest.approx(0.3)
    assert parse_progress("loading session") is None


def test_result_files_named_in_the_output(tmp_path):
    from app.jobs import result_paths

    (tmp_path / "plots").mkdir()
    png = tmp_path / "plots" / "trajectory.png"
    png.write_bytes(b"\x89PNG")
    text = f"wrote {png}\nsaved plots/trajectory.png, video missing.mp4\n"
    assert result_paths(text, tmp_path) == [png]


def test_job_reports_results_and_can_be_cancelled(qtbot, tmp_path):
    from app.jobs import OfflineJob
    from data_schema.reader import read_session

    # A job that finishes.
    out = tmp_path / "short.h5"
    job = OfflineJob(["record", "--duration", "0.5", "--out", str(out), "--quiet"], cwd=tmp_path)
    with qtbot.waitSignal(job.finished, timeout=60000) as done:
        job.start()
    assert done.args[0] == 0 and out.exists()
    assert any("wrote" in line for line in job.text)

    # A job that is cancelled: the process stops cleanly and keeps what it wrote.
    long = tmp_path / "long.h5"
    job = OfflineJob(["record", "--duration", "120", "--out", str(long), "--quiet"], cwd=tmp_path)
    job.start()
    qtbot.waitUntil(long.exists, timeout=30000)
    qtbot.wait(1000)
    with qtbot.waitSignal(job.finished, timeout=30000) as done:
        job.cancel()
    assert done.args[0] == -1 and job.cancelled
    assert read_session(long).clean_close  # `record` closes the file on SIGTERM


def test_stage_buttons_follow_installed_commands(qtbot, tmp_path):
    from app.jobs import stage_available
    from app.widgets.jobs_panel import JobsPanel

    panel = JobsPanel()
    qtbot.addWidget(panel)
    assert not panel.buttons["decode"].isEnabled()  # nothing recorded yet
    panel.set_recording(tmp_path / "x.h5")
    for stage, button in panel.buttons.items():
        assert button.isEnabled() == stage_available(stage)


# ---------------------------------------------------------------------- command line
def _no_display_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    return env


def test_app_without_display_says_so(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "app.cli", "app"],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "recall-lab demo" in lines[0]
    assert "Traceback" not in r.stderr


def test_or_demo_runs_the_demo_without_display(tmp_path):
    with subprocess.Popen(
        [sys.executable, "-m", "app.cli", "app", "--or-demo"],
        env=_no_display_env(),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,  # the demo writes its session file here
    ) as p:
        first = p.stderr.readline()  # said before the demo starts; the demo is tested elsewhere
        p.terminate()
    assert "running `recall-lab demo`" in first


def test_no_dangling_threads_after_console_closes(qtbot, tmp_path):
    from app.console import ConsoleWindow
    from app.settings import AppSettings

    before = set(threading.enumerate())
    win = ConsoleWindow(AppSettings(tmp_path / "s.ini"))
    qtbot.addWidget(win)
    win.connect_source("synthetic")
    qtbot.waitUntil(lambda: win.feed is not None, timeout=20000)
    win.close()
    qtbot.waitUntil(
        lambda: not [t for t in set(threading.enumerate()) - before if t.is_alive()],
        timeout=10000,
    )


@pytest.mark.slow
def test_bench_gui_runs(tmp_path):
    """The GUI benchmark runs end to end (under Xvfb) and every injected key is in the file."""
    import json
    import shutil

    if not os.environ.get("DISPLAY") and not shutil.which("xvfb-run"):
        pytest.skip("needs a display or xvfb-run")
    r = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_gui.py"), "--seconds", "2",
         "--keys", "4", "--settle", "1", "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    fig = json.loads((tmp_path / "gui.json").read_text())["sections"]["gui"]["figures"]
    assert fig["keys_match"] and fig["keys_in_file"] == 4
    assert fig["eeg_counter"]["missing"] == 0
    assert fig["scope_fps"] > 0


def test_lsl_streams_are_listed_with_what_tells_them_apart(qtbot, tmp_path, unique_id):
    """The list shows type, channels, rate, format and host (two amplifiers' streams may share
    a name), and a listed stream is then found again by its source_id, exactly."""
    import socket

    import pylsl

    from app.settings import AppSettings
    from app.widgets.source_panel import SourcePanel

    info = pylsl.StreamInfo(f"Amp-{unique_id}", "EEG", 24, 500.0, "float32", unique_id)
    outlet = pylsl.StreamOutlet(info)
    panel = SourcePanel(AppSettings(tmp_path / "s.ini"))
    qtbot.addWidget(panel)
    panel.kind.setCurrentIndex(panel.kind.findData("lsl"))

    def entry() -> int:
        return next((i for i in range(panel.lsl.count()) if unique_id in panel.lsl.itemText(i)), -1)

    for _ in range(3):  # discovery on a busy machine can miss a stream once
        panel.refresh_streams()
        qtbot.waitUntil(lambda: panel.refresh.isEnabled(), timeout=15000)
        if entry() >= 0:
            break
    i = entry()
    assert i >= 0
    text = panel.lsl.itemText(i)
    assert text == (f"Amp-{unique_id} (EEG, 24 ch, 500 Hz, float32, on {socket.gethostname()})"), (
        text
    )
    panel.lsl.setCurrentIndex(i)
    assert panel.spec() == f"lsl:source_id={unique_id}"
    panel.lsl.setCurrentText("SomeOtherName")  # typed by hand: taken as typed
    assert panel.spec() == "lsl:SomeOtherName"
    del outlet
