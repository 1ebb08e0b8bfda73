"""Key names as protocols write them (``"1"``, ``"space"``, ``"left"``) from Qt key codes."""

from __future__ import annotations

from PyQt6 import QtCore, QtGui

_SPECIAL = {
    QtCore.Qt.Key.Key_Space: "space",
    QtCore.Qt.Key.Key_Return: "return",
    QtCore.Qt.Key.Key_Enter: "return",
    QtCore.Qt.Key.Key_Escape: "escape",
    QtCore.Qt.Key.Key_Left: "left",
    QtCore.Qt.Key.Key_Right: "right",
    QtCore.Qt.Key.Key_Up: "up",
    QtCore.Qt.Key.Key_Down: "down",
    QtCore.Qt.Key.Key_Tab: "tab",
    QtCore.Qt.Key.Key_Backspace: "backspace",
}


def key_name(event: QtGui.QKeyEvent) -> str:
    """The lower-case name of the key in ``event`` (``"1"``, ``"a"``, ``"space"``)."""
    key = event.key()
    if key in _SPECIAL:
        return _SPECIAL[key]
    try:
        name = QtGui.QKeySequence(key).toString()
    except (TypeError, ValueError):
        name = ""
    return (name or event.text() or f"key{int(key)}").lower()
