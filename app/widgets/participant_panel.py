"""Where the participant display goes and where the participant's keys come from."""

from __future__ import annotations

from collections.abc import Callable

from PyQt6 import QtCore, QtGui, QtWidgets, sip

from app.settings import AppSettings

#: The keyboard choice that reads keys from this app's windows (whichever has focus).
QT_KEYBOARD = "qt"


class ParticipantPanel(QtWidgets.QGroupBox):
    """Screen, window or full screen, the participant's keyboard, the melody folder.

    Signals
    -------
    show_requested
        Show (or re-open) the participant display with these settings.
    """

    show_requested = QtCore.pyqtSignal()

    def __init__(self, settings: AppSettings, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Participant display", parent)
        self.settings = settings
        self.screen = QtWidgets.QComboBox()
        self.screen.setAccessibleName("Participant screen")
        for i, sc in enumerate(QtGui.QGuiApplication.screens()):
            g = sc.geometry()
            self.screen.addItem(f"{i}: {sc.name()} {g.width()}x{g.height()}", i)
        self.screen.setCurrentIndex(
            max(0, self.screen.findData(settings.get("participant/screen")))
        )
        self.fullscreen = QtWidgets.QCheckBox("Full screen")
        self.fullscreen.setAccessibleName("Full screen")
        self.fullscreen.setChecked(settings.get("participant/fullscreen"))
        self.keyboard = QtWidgets.QComboBox()
        self.keyboard.setAccessibleName("Participant keyboard")
        self.keyboard.setToolTip(
            "Where the participant's keys come from. 'Any window of this app' reads the "
            "keyboard whichever recall-lab window has focus; a device (XInput2 on X11, evdev "
            "on Linux) is read directly, focus or not, with the device's own event times, so "
            "the experimenter's keyboard stays free for the console."
        )
        self.set_keyboards([], listed=False)
        self.melody_dir = QtWidgets.QLineEdit(settings.get("participant/melody_dir"))
        self.melody_dir.setAccessibleName("Melody folder")
        self.melody_dir.setPlaceholderText("folder the melody chooser opens in")
        self.melody_browse = QtWidgets.QPushButton("…")
        self.melody_browse.setMaximumWidth(32)
        self.show_button = QtWidgets.QPushButton("Show participant display")
        self.show_button.setAccessibleName("Show participant display")
        form = QtWidgets.QFormLayout(self)
        row = QtWidgets.QWidget()
        rl = QtWidgets.QHBoxLayout(row)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.screen, 1)
        rl.addWidget(self.fullscreen)
        form.addRow("Screen", row)
        form.addRow("Keys from", self.keyboard)
        mrow = QtWidgets.QWidget()
        ml = QtWidgets.QHBoxLayout(mrow)
        ml.setContentsMargins(0, 0, 0, 0)
        ml.addWidget(self.melody_dir, 1)
        ml.addWidget(self.melody_browse)
        form.addRow("Melodies", mrow)
        form.addRow(self.show_button)
        self.show_button.clicked.connect(self._show)
        self.melody_browse.clicked.connect(self._browse)

    def set_keyboards(self, keyboards: list, *, listed: bool = True) -> None:
        """Offer ``keyboards`` (:class:`drivers.keyboard.KeyboardInfo`) beside the app's windows.

        ``listed=False`` while the devices are still being listed (the saved choice stays).
        """
        wanted = self.settings.get("participant/keyboard")
        self.keyboard.clear()
        self.keyboard.addItem("Any window of this app (focus-independent)", QT_KEYBOARD)
        for k in keyboards:
            self.keyboard.addItem(f"{k.backend}: {k.name}", k.spec)
        index = self.keyboard.findData(wanted)
        if index < 0 and wanted and wanted != QT_KEYBOARD:
            self.keyboard.addItem(f"{wanted}" + (" (not found now)" if listed else ""), wanted)
            index = self.keyboard.count() - 1
        self.keyboard.setCurrentIndex(max(0, index))

    def values(self) -> dict[str, object]:
        v = {
            "screen": int(self.screen.currentData() or 0),
            "fullscreen": self.fullscreen.isChecked(),
            "keyboard": str(self.keyboard.currentData() or QT_KEYBOARD),
            "melody_dir": self.melody_dir.text().strip(),
        }
        s = self.settings
        s.set("participant/screen", v["screen"])
        s.set("participant/fullscreen", v["fullscreen"])
        s.set("participant/keyboard", v["keyboard"])
        s.set("participant/melody_dir", v["melody_dir"])
        return v

    def set_recording(self, recording: bool) -> None:
        self.keyboard.setEnabled(not recording)  # the session file names one keyboard

    def _show(self) -> None:
        self.values()
        self.show_requested.emit()

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Folder of melodies", self.melody_dir.text() or str(QtCore.QDir.homePath())
        )
        if path:
            self.melody_dir.setText(path)


def participant_rect(
    screen: QtCore.QRect, console: QtCore.QRect | None, *, min_width: int = 480
) -> tuple[QtCore.QRect, QtCore.QRect | None]:
    """Where the participant window goes on ``screen`` (available area) without hiding the
    console (its frame ``console``, or ``None`` if it is on another screen).

    Returns the participant window's rectangle (frame included) and, when the console had to
    make room, the console's new rectangle (else ``None``). The larger free side of the screen
    is used if it is at least ``min_width`` wide; otherwise the screen is shared, the console on
    the left (55 %, less if the participant display needs more), the participant display on
    the right.
    """
    if console is None or not console.intersects(screen):
        w, h = int(screen.width() * 0.8), int(screen.height() * 0.8)
        x = screen.x() + (screen.width() - w) // 2
        y = screen.y() + (screen.height() - h) // 2
        return QtCore.QRect(x, y, w, h), None
    right = screen.right() - console.right()
    left = console.left() - screen.left()
    if max(left, right) >= min_width:
        if right >= left:
            return QtCore.QRect(console.right() + 1, screen.y(), right, screen.height()), None
        return QtCore.QRect(screen.x(), screen.y(), left, screen.height()), None
    split = min(int(screen.width() * 0.55), screen.width() - min_width)
    new_console = QtCore.QRect(screen.x(), screen.y(), split, screen.height())
    part = QtCore.QRect(screen.x() + split, screen.y(), screen.width() - split, screen.height())
    return part, new_console


class _Later(QtCore.QObject):
    """A one-shot timer that is its owner's child and calls ``fn(owner)`` from its own
    ``timerEvent`` (see :func:`later`)."""

    def __init__(self, owner: QtCore.QObject, ms: int, fn: Callable[[QtCore.QObject], None]):
        super().__init__(owner)
        self._fn: Callable[[QtCore.QObject], None] | None = fn
        self.startTimer(max(0, int(ms)), QtCore.Qt.TimerType.CoarseTimer)

    def timerEvent(self, event: QtCore.QTimerEvent) -> None:
        self.killTimer(event.timerId())
        fn, self._fn = self._fn, None
        owner = self.parent()
        self.deleteLater()
        if fn is not None and owner is not None and not sip.isdeleted(owner):
            fn(owner)


def later(owner: QtCore.QObject, ms: int, fn: Callable[[QtCore.QObject], None]) -> None:
    """Call ``fn(owner)`` in ``ms`` milliseconds unless ``owner`` is gone by then.

    The timer is an object of ``owner``'s own (its child: destroyed with it, it never fires
    after) that calls ``fn`` from its timer event. Earlier versions connected a closure to a
    ``QTimer``'s ``timeout`` signal holding a weak reference to ``owner``; a test run crashed
    (segfault inside that closure, in the event processing between two tests) about every
    second time. No signal, no slot proxy, no weak reference here.
    """
    _Later(owner, ms, fn)


def fit_frame(window: QtWidgets.QWidget, target: QtCore.QRect) -> None:
    """Put ``window`` so that its whole frame (title bar included) fills ``target``.

    Qt positions a top-level's client area; the window manager's frame (known once the window
    is mapped) is added around it, so the client rectangle is ``target`` less the frame.
    """
    frame, inner = window.frameGeometry(), window.geometry()
    left, top = inner.x() - frame.x(), inner.y() - frame.y()
    right, bottom = frame.right() - inner.right(), frame.bottom() - inner.bottom()
    window.setGeometry(
        target.x() + left,
        target.y() + top,
        max(200, target.width() - left - right),
        max(150, target.height() - top - bottom),
    )


def place_participant(
    console: QtWidgets.QWidget,
    participant: QtWidgets.QWidget,
    screen_index: int,
    fullscreen: bool,
    *,
    confirm_cover: Callable[[], bool],
) -> tuple[int, bool]:
    """Show ``participant`` full screen on screen ``screen_index``, or as a window beside
    ``console``; returns the screen used and whether it went full screen.

    Full screen on the console's own screen would hide the console: only if
    ``confirm_cover()`` agrees. A window on the console's screen takes the free side; if there
    is none wide enough, the console makes room.
    """
    screens = QtGui.QGuiApplication.screens()
    index = screen_index if 0 <= screen_index < len(screens) else 0
    screen = screens[index]
    same = console.isVisible() and console.screen() is screen
    if fullscreen and same and not confirm_cover():
        fullscreen = False
    needed = participant.minimumSizeHint().width() + 16  # and the window frame
    rect, console_rect = participant_rect(
        screen.availableGeometry(),
        console.frameGeometry() if same else None,
        min_width=max(480, needed),
    )
    if console_rect is not None and not fullscreen:
        if console.isMaximized() or console.isFullScreen():
            console.showNormal()
        fit_frame(console, console_rect)
        # Before the window manager has framed the window its frame is unknown: fit again.
        target = QtCore.QRect(console_rect)
        for ms in (300, 800, 1500):
            later(console, ms, lambda c: fit_frame(c, target))
    participant.place(rect, index, fullscreen)
    return index, fullscreen
