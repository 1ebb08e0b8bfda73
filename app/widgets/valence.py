"""Valence feedback: shows the participant which valence key is held right now."""

from __future__ import annotations

from PyQt6 import QtCore, QtWidgets

COLOURS = {"positive": "#2e7d32", "negative": "#c62828", "neutral": "#616161", "": "#bdbdbd"}


class ValenceIndicator(QtWidgets.QLabel):
    """A coloured bar naming the valence currently reported (or none)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.setMinimumHeight(48)
        self.set_valence("")

    def set_valence(self, valence: str) -> None:
        self.valence = valence
        text = valence or "no key held"
        self.setText(text)
        self.setStyleSheet(
            f"background:{COLOURS.get(valence, '#bdbdbd')}; color:white; font-size:20px;"
            "border-radius:6px; padding:6px;"
        )
