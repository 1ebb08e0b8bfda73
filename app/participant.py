"""The participant display: its own window, full screen on a chosen screen.

It shows what the protocol asks for now (instructions, a cue, a countdown, valence feedback, a
text box, the sketch canvas, the melody panel, SAM scales) and reports what the participant
does through signals. It holds no protocol logic: :mod:`app.protocol_runner` tells it which
phase to show and decides what the signals mean. Keys do not come from here: the participant's
keys reach the protocol whichever window has focus (:mod:`app.participant_input`).
"""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets

from app.widgets.melody import MelodyPanel
from app.widgets.preference_panel import PreferencePanel
from app.widgets.sam import SamPanel
from app.widgets.sketch import SketchCanvas
from app.widgets.valence import ValenceIndicator
from drivers.clock import local_clock

PAGE_TEXT, PAGE_DESCRIPTION, PAGE_SKETCH, PAGE_MELODY, PAGE_SAM, PAGE_PREFERENCE = range(6)
KIND_PAGE = {
    "description": PAGE_DESCRIPTION,
    "sketch": PAGE_SKETCH,
    "melody": PAGE_MELODY,
    "sam": PAGE_SAM,
    "preference_video": PAGE_PREFERENCE,
    "preference_rating": PAGE_PREFERENCE,
    "preference_choice": PAGE_PREFERENCE,
}


class ParticipantWindow(QtWidgets.QWidget):
    """What the participant sees and touches.

    Signals
    -------
    description_submitted(text, t)
    description_edited(text, t)
        The text as it stands after each change (drafts are kept, never only on Submit).
    sketch_points(points)
        ``(stroke, t, x, y, pressure)`` tuples as drawn.
    sketch_submitted(png, t, width, height)
    sam_rated(label, value, t)
        ``sam_valence``/``sam_arousal``, 1-9.
    done(t)
        The participant pressed the melody phase's "Done" button.
    closed()
        The window was closed (after :attr:`confirm_close` agreed).

    The capture indicator (:meth:`set_capture`) says "Camera on" / "Microphone on" while the
    participant's face or voice is being recorded.
    """

    description_submitted = QtCore.pyqtSignal(str, float)
    description_edited = QtCore.pyqtSignal(str, float)
    sketch_points = QtCore.pyqtSignal(list)
    sketch_submitted = QtCore.pyqtSignal(bytes, float, int, int)
    sam_rated = QtCore.pyqtSignal(str, int, float)
    done = QtCore.pyqtSignal(float)
    closed = QtCore.pyqtSignal()

    TITLE = "recall-lab: participant display"

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(self.TITLE)
        self.setAccessibleName("participant display")
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        #: Called before the window closes; returns whether it may (the console asks).
        self.confirm_close = lambda: True
        self.setStyleSheet("QWidget { font-size: 18px; }")
        self.kind = ""

        self.title = QtWidgets.QLabel()
        self.title.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet("font-size: 30px; font-weight: bold;")
        self.title.setAccessibleName("participant display title")
        self.countdown = QtWidgets.QLabel()
        self.countdown.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.countdown.setStyleSheet("font-size: 22px; color: #555;")
        self.valence = ValenceIndicator()
        self.valence.hide()
        # The participant always knows when they are filmed or heard.
        self.capture_indicator = QtWidgets.QLabel()
        self.capture_indicator.setAccessibleName("Capture indicator")
        self.capture_indicator.setStyleSheet(
            "font-size: 18px; font-weight: bold; color: #c00; padding: 2px 8px;"
        )
        self.capture_indicator.hide()

        self.pages = QtWidgets.QStackedWidget()
        self.text = QtWidgets.QLabel()
        self.text.setWordWrap(True)
        self.text.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.text.setStyleSheet("font-size: 26px;")
        self.text.setAccessibleName("Phase text")
        self.pages.addWidget(self.text)

        self.description = QtWidgets.QPlainTextEdit()
        self.description.setPlaceholderText("Describe the memory in your own words…")
        self.description.setAccessibleName("Description")
        self.submit_description = QtWidgets.QPushButton("Submit description")
        self.submit_description.setAccessibleName("Submit")
        self.pages.addWidget(_column(self.description, self.submit_description))

        self.canvas = SketchCanvas()
        self.undo_button = QtWidgets.QPushButton("Undo")
        self.clear_button = QtWidgets.QPushButton("Clear")
        self.submit_sketch = QtWidgets.QPushButton("Submit sketch")
        self.submit_sketch.setAccessibleName("Submit")
        buttons = QtWidgets.QHBoxLayout()
        for b in (self.undo_button, self.clear_button, self.submit_sketch):
            buttons.addWidget(b)
        sketch_page = QtWidgets.QWidget()
        sl = QtWidgets.QVBoxLayout(sketch_page)
        sl.addWidget(self.canvas, 1)
        sl.addLayout(buttons)
        self.pages.addWidget(sketch_page)

        self.melody = MelodyPanel()
        self.melody_done = QtWidgets.QPushButton("Done")
        self.pages.addWidget(_column(self.melody, self.melody_done, stretch_first=False))

        self.sam = SamPanel()
        self.pages.addWidget(self.sam)

        # A preference phase: the video, its scales, the choice (signals rated, chose).
        self.preference = PreferencePanel()
        self.pages.addWidget(self.preference)

        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.capture_indicator)
        top.addWidget(self.title, 1)
        top.addWidget(self.countdown)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(40, 30, 40, 30)
        lay.addLayout(top)
        lay.addWidget(self.pages, 1)
        lay.addWidget(self.valence)

        self.submit_description.clicked.connect(self._submit_description)
        self.submit_sketch.clicked.connect(self._submit_sketch)
        self.undo_button.clicked.connect(self.canvas.undo)
        self.clear_button.clicked.connect(self.canvas.clear)
        self.canvas.points_ready.connect(self.sketch_points)
        self.sam.rated.connect(self.sam_rated)
        self.melody_done.clicked.connect(lambda: self.done.emit(local_clock()))
        self.description.textChanged.connect(
            lambda: self.description_edited.emit(self.description.toPlainText(), local_clock())
        )
        for b in self.findChildren(QtWidgets.QPushButton):
            # Buttons are clicked, never pressed by a key: space or enter typed for the
            # protocol must not submit a page.
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            b.setAutoDefault(False)
        self.show_phase("", "Waiting", "The session will start soon.")

    # ------------------------------------------------------------------ what to show
    def show_phase(
        self,
        kind: str,
        title: str,
        text: str = "",
        *,
        remaining: float | None = None,
        valence_feedback: bool = False,
    ) -> None:
        """Show a phase; ``remaining`` seconds for the countdown (``None``: no countdown)."""
        self.kind = kind
        self.title.setText(title)
        page = KIND_PAGE.get(kind, PAGE_TEXT)
        if page == PAGE_TEXT:
            self.text.setText(text)
        elif page == PAGE_DESCRIPTION:
            self.description.blockSignals(True)  # a new, empty box is not a draft
            self.description.clear()
            self.description.blockSignals(False)
            self.description.setPlaceholderText(text or "Describe the memory in your own words…")
        elif page == PAGE_SKETCH:
            self.canvas.reset()
        elif page == PAGE_SAM:
            self.sam.reset()
        elif page == PAGE_PREFERENCE and kind == "preference_video":
            self.preference.show_video()
        self.pages.setCurrentIndex(page)
        self.valence.setVisible(valence_feedback)
        self.valence.set_valence("")
        if page == PAGE_DESCRIPTION:
            self.description.setFocus()
        else:
            self.setFocus()  # keys reach keyPressEvent, not a button
        self.set_remaining(remaining)

    def set_capture(self, camera: bool, microphone: bool) -> None:
        """Show "Camera on" / "Microphone on" while they record (hidden when neither does)."""
        parts = [name for name, on in (("Camera on", camera), ("Microphone on", microphone)) if on]
        self.capture_indicator.setText("● " + "  ● ".join(parts) if parts else "")
        self.capture_indicator.setVisible(bool(parts))

    def set_valence(self, valence: str) -> None:
        self.valence.set_valence(valence)

    def set_remaining(self, seconds: float | None) -> None:
        """Update the countdown (``None`` hides it)."""
        if seconds is None:
            self.countdown.setText("")
        else:
            self.countdown.setText(f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s")

    def place(self, geometry: QtCore.QRect | None, screen_index: int, fullscreen: bool) -> None:
        """Show the display full screen on screen ``screen_index``, or as a window at
        ``geometry`` (a rectangle for the whole window, title bar included: never off-screen).
        """
        screens = QtGui.QGuiApplication.screens()
        screen = screens[screen_index] if 0 <= screen_index < len(screens) else None
        if screen is not None:
            self.setScreen(screen)
        if fullscreen:
            if screen is not None:
                self.setGeometry(screen.geometry())
            self.showFullScreen()
            return
        if self.isFullScreen():
            self.showNormal()
        if geometry is not None:
            self.resize(geometry.size())
            self.move(geometry.topLeft())
        self.show()
        if geometry is not None:
            # The window manager adds its frame once the window is mapped: fit the whole frame
            # (title bar included) into the rectangle asked for.
            # Under load the frame may come late: fit again until it surely has.
            from app.widgets.participant_panel import later

            target = QtCore.QRect(geometry)
            for ms in (200, 700, 1500):
                later(self, ms, lambda w: w._fit_frame(target))

    def _fit_frame(self, target: QtCore.QRect) -> None:
        from app.widgets.participant_panel import fit_frame

        fit_frame(self, target)

    def closeEvent(self, e: QtGui.QCloseEvent) -> None:
        if self.confirm_close():
            e.accept()
            self.closed.emit()
        else:
            e.ignore()

    # ------------------------------------------------------------------ participant input
    def _submit_description(self) -> None:
        t = local_clock()
        self.description_submitted.emit(self.description.toPlainText(), t)

    def _submit_sketch(self) -> None:
        t = local_clock()
        self.canvas.flush()
        png = self.canvas.to_png()
        self.sketch_submitted.emit(png, t, self.canvas.width(), self.canvas.height())


def _column(
    main: QtWidgets.QWidget, button: QtWidgets.QPushButton, *, stretch_first: bool = True
) -> QtWidgets.QWidget:
    w = QtWidgets.QWidget()
    lay = QtWidgets.QVBoxLayout(w)
    lay.addWidget(main, 1 if stretch_first else 0)
    if not stretch_first:
        lay.addStretch(1)
    button.setMinimumHeight(44)
    lay.addWidget(button)
    return w
