"""When an input happened, on the LSL clock, and key names as protocols write them.

:func:`input_time` is called first thing in every input handler. On Linux under X11 it returns
the X server's own timestamp of the event: the server stamps each input with its
``CLOCK_MONOTONIC`` time in milliseconds, the same clock liblsl's ``local_clock()`` reads, so
the time no longer includes how long the event waited in Qt's queue while the GUI thread was
busy (measured in ``benchmarks/bench_gui.py``). Where that cannot be trusted (other
platforms, offscreen, synthetic events) it is the LSL time read in the handler.
"""

from __future__ import annotations

import sys

from PyQt6 import QtCore, QtGui

from drivers.clock import x11_time as x11_time_on_lsl

#: An X server stamps an event with the millisecond it fell in; its centre is half a ms later.
STAMP_CENTRE_S = 0.0005


def input_time(event: QtGui.QInputEvent, handler_time: float) -> float:
    """LSL time of ``event``; ``handler_time`` is ``local_clock()`` read as the handler began.

    The X server's millisecond timestamp is used when Qt runs on X11 (xcb) and the stamp is
    plausible: at most 2 s before the handler, after undoing 32-bit wrap-around. Otherwise
    (offscreen, Wayland, Windows, macOS, events made by QTest) the handler's time is used.
    """
    if not sys.platform.startswith("linux") or QtGui.QGuiApplication.platformName() != "xcb":
        return handler_time
    return x11_time(event.timestamp(), handler_time)


def x11_time(stamp_ms: int, handler_time: float) -> float:
    """An X server timestamp (32-bit ms of ``CLOCK_MONOTONIC``) as LSL seconds.

    ``handler_time`` (LSL seconds, read after the event) resolves the wrap-around; a stamp more
    than 2 s before it (or after it) is not trusted and ``handler_time`` is returned. The server
    truncates its clock to the millisecond, so the event is put at the centre of its
    millisecond (:data:`STAMP_CENTRE_S`), as the XInput2 keyboard does
    (:func:`drivers.clock.x11_time`).
    """
    return x11_time_on_lsl(stamp_ms, handler_time, offset_s=STAMP_CENTRE_S)


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
