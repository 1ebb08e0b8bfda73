"""The banner that says, loudly, that the signal has stopped."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets


class StallBanner(QtWidgets.QLabel):
    """A red band above the scope while the source delivers nothing.

    A frozen trace looks like a signal; the word "stalled" in a status line is easy to miss.
    The banner says what stopped, for how long, and what the recording and the protocol do.
    """

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Stall banner")
        self.setWordWrap(True)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setStyleSheet(
            "QLabel { background: #c62828; color: white; font-weight: bold; font-size: 16pt;"
            " padding: 8px; }"
        )
        self.hide()

    def show_stall(self, source: str, seconds: float, *, protocol_paused: bool) -> None:
        then = (
            "The protocol is paused: press Resume once the signal is back."
            if protocol_paused
            else "The protocol goes on."
        )
        self.setText(
            f"NO SIGNAL from {source} for {seconds:.0f} s. The recording goes on and marks "
            f"the gap; samples are written again as soon as they come back. {then}"
        )
        self.show()

    def clear_stall(self) -> None:
        self.setText("")
        self.hide()
