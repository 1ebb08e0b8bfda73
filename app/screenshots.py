"""Take the README's screenshots of both windows during a demo session.

Run under a display (``xvfb-run -s "-screen 0 1600x1000x24" python -m app.screenshots
docs/screenshots``): it connects the synthetic board, records a demo session into a temporary
folder, presses the participant's valence key during recall, draws a sketch, and saves
``console.png``, ``participant.png`` (recall with valence feedback) and
``participant_sketch.png``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from PyQt6 import QtCore, QtWidgets
from PyQt6.QtTest import QTest


def _wait(app: QtWidgets.QApplication, seconds: float, until=None) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    out = Path((argv or sys.argv[1:] or ["docs/screenshots"])[0])
    out.mkdir(parents=True, exist_ok=True)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["recall-lab"])
    from app.console import ConsoleWindow
    from app.settings import AppSettings

    tmp = Path(tempfile.mkdtemp(prefix="recall-lab-shots-"))
    settings = AppSettings(tmp / "settings.ini")
    settings.set("session/out_dir", str(tmp))
    settings.set("session/protocol", "demo")
    settings.set("scope/spectrum", True)
    win = ConsoleWindow(settings)
    win.session_panel.participant.setText("P001")
    win.resize(1500, 950)
    win.move(0, 0)
    win.show()
    win.participant.resize(1200, 800)
    win.participant.move(350, 150)
    win.connect_source("synthetic")
    _wait(app, 20, lambda: win.feed is not None)
    win.start_recording()
    win.start_protocol()
    p = win.participant

    def kind() -> str:
        return win.runner.engine.display().kind if win.runner else ""

    _wait(app, 5, lambda: kind() == "instructions")
    QTest.keyClick(p, QtCore.Qt.Key.Key_Space)
    _wait(app, 30, lambda: kind() == "recall")
    _wait(app, 3)
    QTest.keyPress(p, QtCore.Qt.Key.Key_1)
    _wait(app, 1.5)
    p.grab().save(str(out / "participant.png"))
    QTest.keyRelease(p, QtCore.Qt.Key.Key_1)
    win.display_panel.window.setValue(5.0)
    win.resize(1500, 950)  # again: fitting the participant window to its screen moved it
    _wait(app, 1.0)
    win.grab().save(str(out / "console.png"))
    win.session_panel.skip_button.click()
    _wait(app, 5, lambda: kind() == "description")
    QTest.keyClicks(p.description, "A warm afternoon in the garden, the smell of cut grass.")
    p.submit_description.click()
    _wait(app, 5, lambda: kind() == "sketch")
    c = p.canvas
    import math

    pts = [
        QtCore.QPoint(int(300 + 120 * math.cos(a / 20)), int(200 + 90 * math.sin(a / 20)))
        for a in range(0, 130)
    ]
    QTest.mousePress(c, QtCore.Qt.MouseButton.LeftButton, pos=pts[0])
    for q in pts[1:]:
        QTest.mouseMove(c, q)
    QTest.mouseRelease(c, QtCore.Qt.MouseButton.LeftButton, pos=pts[-1])
    _wait(app, 0.3)
    p.grab().save(str(out / "participant_sketch.png"))
    win.stop_recording()
    win.close()
    print(f"screenshots in {out}; session in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
