"""The app's process for the real-input rig: ``recall-lab app`` plus a read-only inspector.

Run as ``python child.py [recall-lab app options]`` on an X display (``DISPLAY``), with
``RECALL_LAB_RIG_FD`` naming the file descriptor to answer on. It makes the QApplication (xcb,
real X events), an :class:`Inspector` on the GUI thread and a thread that reads one JSON
command per line from stdin, then calls the real entry point, ``app.cli.main(["app", ...])``,
which builds the console exactly as ``recall-lab app`` does (it reuses this QApplication).

Commands run on the GUI thread (a queued signal) and are answered on the dedicated descriptor
as ``{"id": n, "ok": true, "result": ...}`` lines, so nothing the app prints can corrupt them.
They only look, as an assistive tool would: where a widget is and what it shows, which window
is active, what the console is recording. Input comes from the X server and nowhere else;
``quit`` is the only command that acts (it ends the process, as closing the windows would).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # so `app` imports from this checkout when not installed
    sys.path.insert(1, str(REPO))

os.environ["QT_QPA_PLATFORM"] = "xcb"  # the real X server, not the offscreen platform

from PyQt6 import QtCore, QtWidgets  # noqa: E402

DECORATION = "●■▶◀⏸⏹⏺ \t"


def plain(text: str) -> str:
    """A button's or label's text as a person reads it: no mnemonic ``&``, no symbol, no ``…``."""
    text = text.replace("&&", "\0").replace("&", "").replace("\0", "&")
    text = text.strip(DECORATION)
    for tail in ("…", "..."):
        text = text.removesuffix(tail)
    return text.strip(DECORATION)


def widget_text(w: QtWidgets.QWidget) -> str | None:
    if isinstance(w, QtWidgets.QStatusBar):
        return w.currentMessage()
    if isinstance(w, QtWidgets.QListWidget):  # one line per item, as a person reads the list
        return "\n".join(w.item(i).text() for i in range(w.count()))
    if isinstance(w, QtWidgets.QProgressBar):
        return w.text()
    if isinstance(w, QtWidgets.QPlainTextEdit | QtWidgets.QTextEdit):
        return w.toPlainText()
    if isinstance(w, QtWidgets.QComboBox):
        return w.currentText()
    if isinstance(w, QtWidgets.QAbstractSpinBox):
        return w.text()
    text = getattr(w, "text", None)
    if callable(text):
        try:
            value = text()
        except TypeError:
            return None
        return value if isinstance(value, str) else None
    return None


def top_level(w: QtWidgets.QWidget) -> QtWidgets.QWidget:
    # Unbound: an app widget may have an attribute called `window` (the scope's time window).
    return QtWidgets.QWidget.window(w)


def window_title(w: QtWidgets.QWidget) -> str:
    return top_level(w).windowTitle()


_CONTROLS = (
    QtWidgets.QAbstractButton,
    QtWidgets.QAbstractSlider,
    QtWidgets.QAbstractSpinBox,
    QtWidgets.QAbstractScrollArea,
    QtWidgets.QComboBox,
    QtWidgets.QLineEdit,
    QtWidgets.QSplitterHandle,
    QtWidgets.QTabBar,
)


def passive(w: QtWidgets.QWidget) -> bool:
    """Whether a click on ``w`` does nothing but move focus (a label, a margin, a frame)."""
    if isinstance(w, _CONTROLS) or w.focusPolicy() != QtCore.Qt.FocusPolicy.NoFocus:
        return w.isWindow() and not isinstance(w, _CONTROLS)
    # A widget of the app's own that handles the mouse (a sketch canvas) is a control too.
    return not any(
        name in cls.__dict__
        for cls in type(w).__mro__
        if not cls.__module__.startswith(("PyQt6", "builtins", "sip"))
        for name in ("mousePressEvent", "mouseReleaseEvent", "event")
    )


def describe(w: QtWidgets.QWidget) -> dict:
    """What an assistive tool sees of ``w``: where it is on the screen, its state, its window."""
    dpr = w.devicePixelRatioF()
    top_left = w.mapToGlobal(QtCore.QPoint(0, 0))
    checkable = isinstance(w, QtWidgets.QAbstractButton) and w.isCheckable()
    return {
        "class": type(w).__name__,
        "accessible_name": w.accessibleName(),
        "object_name": w.objectName(),
        "text": widget_text(w),
        "rect": [
            round(top_left.x() * dpr),
            round(top_left.y() * dpr),
            round(w.width() * dpr),
            round(w.height() * dpr),
        ],
        "visible": w.isVisible(),
        "enabled": w.isEnabled(),
        "checkable": checkable,
        "checked": bool(checkable and w.isChecked()),
        "has_focus": w.hasFocus(),
        "focus_policy": w.focusPolicy().name,
        "passive": passive(w),
        "window": window_title(w),
        "window_xid": int(top_level(w).winId()),
        "scroll": _scroll_direction(w),
        "scrollbar": _scrollbar_rect(w),
    }


def _scroll_area(w: QtWidgets.QWidget) -> QtWidgets.QAbstractScrollArea | None:
    p = w.parentWidget()
    while p is not None and not isinstance(p, QtWidgets.QAbstractScrollArea):
        p = p.parentWidget()
    return p


def _scrollbar_rect(w: QtWidgets.QWidget) -> list[int] | None:
    """The screen rectangle of the vertical scroll bar beside ``w``, if one is shown."""
    area = _scroll_area(w)
    bar = area.verticalScrollBar() if area is not None else None
    if bar is None or not bar.isVisible():
        return None
    tl = bar.mapToGlobal(QtCore.QPoint(0, 0))
    dpr = bar.devicePixelRatioF()
    return [round(tl.x() * dpr), round(tl.y() * dpr), round(bar.width() * dpr),
            round(bar.height() * dpr)]  # fmt: skip


def _scroll_direction(w: QtWidgets.QWidget) -> int:
    """Where a person scrolls to see all of ``w``: -1 up, +1 down, 0 it is in view (or not in a
    scroll area)."""
    p = _scroll_area(w)
    if p is None:
        return 0
    vp = p.viewport()
    top = w.mapTo(vp, QtCore.QPoint(0, 0)).y()
    if top < 0:
        return -1
    if top + w.height() > vp.height():
        return 1
    return 0


class Inspector(QtCore.QObject):
    """Answers the rig's questions on the GUI thread; ``request`` may be emitted from any thread."""

    request = QtCore.pyqtSignal(object)

    def __init__(self, write: Callable[[dict], None]) -> None:
        super().__init__()
        self._write = write
        # Emitted from the reader thread, so queued onto this object's (the GUI) thread.
        self.request.connect(self._handle, QtCore.Qt.ConnectionType.QueuedConnection)

    def _handle(self, msg: dict) -> None:
        rid = msg.get("id")
        try:
            handler = getattr(self, "cmd_" + str(msg.get("cmd")), None)
            if handler is None:
                raise ValueError(f"unknown command {msg.get('cmd')!r}")
            reply = {"id": rid, "ok": True, "result": handler(**msg.get("args", {}))}
        except Exception as exc:
            reply = {
                "id": rid,
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
        self._write(reply)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def console():
        from app.console import ConsoleWindow

        for w in QtWidgets.QApplication.topLevelWidgets():
            if isinstance(w, ConsoleWindow):
                return w
        return None

    @staticmethod
    def matches(name: str, window: str | None) -> list[tuple[int, QtWidgets.QWidget]]:
        """Widgets called ``name``: by accessible name (rank 0), else by visible text (rank 1)."""
        found = []
        for w in QtWidgets.QApplication.allWidgets():
            if window is not None and window.lower() not in window_title(w).lower():
                continue
            if w.accessibleName() == name:
                found.append((0, w))
            elif isinstance(w, QtWidgets.QAbstractButton | QtWidgets.QLabel):
                if plain(type(w).text(w)) == name:
                    found.append((1, w))
        return found

    def widget(self, name: str, window: str | None = None) -> QtWidgets.QWidget | None:
        found = self.matches(name, window)
        if not found:
            return None
        modal = QtWidgets.QApplication.activeModalWidget()
        # A person looks at what is shown, in the dialog in front first.
        found.sort(
            key=lambda rw: (
                not rw[1].isVisible(),
                modal is None or top_level(rw[1]) is not modal,
                rw[0],
            )
        )
        return found[0][1]

    # ------------------------------------------------------------------ commands
    def cmd_ping(self) -> str:
        return "pong"

    def cmd_find(self, name: str, window: str | None = None) -> dict | None:
        w = self.widget(name, window)
        if w is None:
            return None
        d = describe(w)
        d["matches"] = len(self.matches(name, window))
        return d

    def cmd_text(self, name: str, window: str | None = None) -> str | None:
        w = self.widget(name, window)
        return None if w is None else widget_text(w)

    def cmd_item(self, name: str, text: str, window: str | None = None) -> list[int] | None:
        """Where the item ``text`` of the list called ``name`` is on the screen (scrolled into
        view first, as a person scrolls to it), or None."""
        w = self.widget(name, window)
        if not isinstance(w, QtWidgets.QListWidget):
            return None
        items = w.findItems(text, QtCore.Qt.MatchFlag.MatchExactly)
        if not items:
            return None
        w.scrollToItem(items[0])
        r = w.visualItemRect(items[0])
        vp = w.viewport()
        top_left = vp.mapToGlobal(r.topLeft())
        dpr = w.devicePixelRatioF()
        return [
            round(top_left.x() * dpr),
            round(top_left.y() * dpr),
            round(r.width() * dpr),
            round(r.height() * dpr),
        ]

    def cmd_items(self, name: str, window: str | None = None) -> list[str] | None:
        """The entries of the combo box called ``name`` (what its list shows when opened)."""
        w = self.widget(name, window)
        if not isinstance(w, QtWidgets.QComboBox):
            return None
        return [w.itemText(i) for i in range(w.count())]

    def cmd_widget_at(self, x: int, y: int) -> dict | None:
        w = QtWidgets.QApplication.widgetAt(QtCore.QPoint(x, y))
        return None if w is None else describe(w)

    def cmd_hit(self, name: str, x: int, y: int, window: str | None = None) -> bool:
        """Whether the widget called ``name`` (or a child of it) is the one at ``(x, y)``."""
        target = self.widget(name, window)
        w = QtWidgets.QApplication.widgetAt(QtCore.QPoint(x, y))
        while w is not None and target is not None:
            if w is target:
                return True
            w = None if w.isWindow() else w.parentWidget()
        return False

    def cmd_windows(self) -> list[dict]:
        out = []
        active = QtWidgets.QApplication.activeWindow()
        modal = QtWidgets.QApplication.activeModalWidget()
        for w in QtWidgets.QApplication.topLevelWidgets():
            if not w.isWindow() or not w.isVisible():
                continue
            g, f = w.geometry(), w.frameGeometry()
            out.append(
                {
                    "title": w.windowTitle(),
                    "class": type(w).__name__,
                    "xid": int(w.winId()),
                    "geometry": [g.x(), g.y(), g.width(), g.height()],
                    "frame": [f.x(), f.y(), f.width(), f.height()],
                    "visible": w.isVisible(),
                    "active": w is active,
                    "modal": w is modal,
                    "text": w.text() if isinstance(w, QtWidgets.QMessageBox) else None,
                }
            )
        return out

    def cmd_focus(self) -> dict:
        w = QtWidgets.QApplication.focusWidget()
        active = QtWidgets.QApplication.activeWindow()
        return {
            "widget": None if w is None else describe(w),
            "active_window": None if active is None else active.windowTitle(),
        }

    def cmd_state(self) -> dict:
        c = self.console()
        if c is None:
            return {"console": False}
        ctl = c.controller
        writer = getattr(ctl, "writer", None)
        runner = getattr(c, "runner", None)
        st: dict = {
            "console": True,
            "connected": bool(ctl.connected),
            "recording": bool(ctl.recording),
            "writer_path": str(writer.path) if writer is not None else None,
            "file_label": c.session_panel.file.text(),
            "last_file": str(c.last_file) if c.last_file is not None else None,
            "runner": runner is not None,
            "engine": None,
            "job_running": False,
            "modal": None,
        }
        if runner is not None:
            d = runner.engine.display()
            st["engine"] = {
                "state": d.state,
                "phase_id": d.phase_id,
                "kind": d.kind,
                "memory_id": d.memory_id,
                "expects": d.expects,
                "valence": d.valence,
                "remaining": d.remaining,
                "done": bool(runner.engine.done),
                "narrating": d.narrating,
            }
        st["participant_visible"] = bool(c.participant.isVisible())
        indicator = c.participant.capture_indicator
        st["capture"] = {
            # What the participant display tells the participant ("" when hidden).
            "indicator": indicator.text() if indicator.isVisible() else "",
            "camera_open": ctl.camera is not None,
            "microphone_open": ctl.microphone is not None,
            "preview_frames": c.preview_frames,
            "level": c.capture_panel.level.format(),
        }
        job = getattr(c.jobs_panel, "job", None)
        st["job_running"] = bool(job is not None and getattr(job, "running", False))
        modal = QtWidgets.QApplication.activeModalWidget()
        if modal is not None:
            st["modal"] = {
                "title": modal.windowTitle(),
                "text": modal.text() if isinstance(modal, QtWidgets.QMessageBox) else None,
                "directory": (
                    modal.directory().absolutePath()
                    if isinstance(modal, QtWidgets.QFileDialog)
                    else None
                ),
                "over": window_title(modal.parentWidget()) if modal.parentWidget() else None,
            }
        return st

    def cmd_quit(self) -> bool:
        QtCore.QTimer.singleShot(0, self._quit)
        return True

    def _quit(self) -> None:
        c = self.console()
        if c is not None:
            if c.controller.recording:
                c.stop_recording()  # closes the file properly, so closing asks nothing
            c.close()
        QtWidgets.QApplication.quit()


def main() -> int:
    fd = int(os.environ.pop("RECALL_LAB_RIG_FD"))
    out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    lock = threading.Lock()

    def write(msg: dict) -> None:
        with lock:
            out.write(json.dumps(msg) + "\n")
            out.flush()

    qt_app = QtWidgets.QApplication(["recall-lab"])
    inspector = Inspector(write)

    def read_commands() -> None:
        for line in sys.stdin:
            if line.strip():
                inspector.request.emit(json.loads(line))
        # The rig went away: leave as closing the windows would.
        inspector.request.emit({"id": None, "cmd": "quit"})

    threading.Thread(target=read_commands, name="rig-commands", daemon=True).start()
    write({"id": None, "event": "started", "pid": os.getpid()})

    from app.cli import main as recall_lab

    rc = recall_lab(["app", *sys.argv[1:]])
    write({"id": None, "event": "exit", "rc": rc})
    del qt_app
    return rc


if __name__ == "__main__":
    sys.exit(main())
