"""Run a function off the GUI thread and hand its result back on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from PyQt6 import QtCore


class _Relay(QtCore.QObject):
    done = QtCore.pyqtSignal(object, object)  # result, error


def in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any, BaseException | None], None],
    parent: QtCore.QObject,
) -> None:
    """Call ``fn()`` in a thread; then ``on_done(result, error)`` on ``parent``'s thread.

    For reading files (a session, a manifest, a models folder) that could take long on a slow
    or network disk: the GUI thread never waits on the disk. Nothing is delivered if
    ``parent`` was deleted meanwhile.
    """
    relay = _Relay(parent)
    relay.done.connect(lambda result, error: (relay.deleteLater(), on_done(result, error)))

    def work() -> None:
        try:
            result, error = fn(), None
        except Exception as exc:  # handed to on_done, which says it in one line
            result, error = None, exc
        try:
            relay.done.emit(result, error)
        except RuntimeError:  # parent (and relay) deleted: nobody to tell
            pass

    threading.Thread(target=work, name="gui-background", daemon=True).start()
