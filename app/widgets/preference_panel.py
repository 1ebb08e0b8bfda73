"""The participant's side of a preference phase: a video, its rating scales, the choice.

The participant sees "Video A" and "Video B" only; what each shows (the reconstruction or its
reordered control) never reaches this panel's text.
"""

from __future__ import annotations

from PyQt6 import QtCore, QtGui, QtWidgets

from drivers.clock import local_clock

PAGE_VIDEO, PAGE_RATINGS, PAGE_CHOICE = range(3)


class _Scale(QtWidgets.QWidget):
    """One scale: its question and a row of buttons ``min``..``max`` ("match 5")."""

    rated = QtCore.pyqtSignal(str, int, float)

    def __init__(self, scale, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.scale = scale.id
        col = QtWidgets.QVBoxLayout(self)
        question = QtWidgets.QLabel(scale.text)
        question.setWordWrap(True)
        col.addWidget(question)
        row = QtWidgets.QHBoxLayout()
        if scale.low:
            row.addWidget(QtWidgets.QLabel(scale.low))
        self.group = QtWidgets.QButtonGroup(self)
        for v in range(scale.min, scale.max + 1):
            b = QtWidgets.QPushButton(str(v))
            b.setCheckable(True)
            b.setMinimumSize(44, 44)
            b.setAccessibleName(f"{scale.id} {v}")
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)  # clicked, never typed
            b.setAutoDefault(False)
            self.group.addButton(b, v)
            row.addWidget(b)
        if scale.high:
            row.addWidget(QtWidgets.QLabel(scale.high))
        col.addLayout(row)
        self.group.idClicked.connect(lambda v: self.rated.emit(self.scale, v, local_clock()))


class PreferencePanel(QtWidgets.QStackedWidget):
    """Video, ratings and choice pages.

    Signals
    -------
    rated(scale, value, t)
        A rating of the video just watched.
    chose(label, t)
        ``A`` or ``B``: the video that fits the memory better.
    """

    rated = QtCore.pyqtSignal(str, int, float)
    chose = QtCore.pyqtSignal(str, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.screen_label = QtWidgets.QLabel()
        self.screen_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.screen_label.setMinimumSize(320, 240)
        self.screen_label.setStyleSheet("background: black;")
        self.screen_label.setAccessibleName("Video")
        self.addWidget(self.screen_label)

        self.ratings = QtWidgets.QWidget()
        self._ratings_layout = QtWidgets.QVBoxLayout(self.ratings)
        self.addWidget(self.ratings)

        choice = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(choice)
        self.choice_text = QtWidgets.QLabel()
        self.choice_text.setWordWrap(True)
        self.choice_text.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.choice_text)
        row = QtWidgets.QHBoxLayout()
        self.choice_buttons = {}
        for label in ("A", "B"):
            b = QtWidgets.QPushButton(f"Video {label}")
            b.setMinimumSize(160, 60)
            b.setAccessibleName(f"Video {label}")
            b.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
            b.setAutoDefault(False)
            b.clicked.connect(lambda _=False, x=label: self.chose.emit(x, local_clock()))
            self.choice_buttons[label] = b
            row.addWidget(b)
        lay.addLayout(row)
        self.addWidget(choice)

    def show_video(self) -> None:
        self.screen_label.clear()
        self.setCurrentIndex(PAGE_VIDEO)

    def show_frame(self, image: QtGui.QImage) -> None:
        pix = QtGui.QPixmap.fromImage(image)
        size = self.screen_label.size()
        self.screen_label.setPixmap(
            pix.scaled(size, QtCore.Qt.AspectRatioMode.KeepAspectRatio)
            if pix.width() > size.width() or pix.height() > size.height()
            else pix
        )

    def show_ratings(self, text: str, scales) -> None:
        while self._ratings_layout.count():
            item = self._ratings_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        if text:
            intro = QtWidgets.QLabel(text)
            intro.setWordWrap(True)
            self._ratings_layout.addWidget(intro)
        for scale in scales:
            row = _Scale(scale)
            row.rated.connect(self.rated)
            self._ratings_layout.addWidget(row)
        self._ratings_layout.addStretch(1)
        self.setCurrentIndex(PAGE_RATINGS)

    def show_choice(self, text: str) -> None:
        self.choice_text.setText(text)
        self.setCurrentIndex(PAGE_CHOICE)
