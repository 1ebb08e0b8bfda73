"""Key presses made through the X server's XTEST extension, as real input events.

XTEST events go through the X server exactly as a keyboard's do: the window manager's focus
decides which window gets them, and the server stamps them. The real-input tests
(``tests/realinput``) and the key-timing benchmarks inject keys with :class:`XTestKeys`; each
event is bracketed by LSL times, so a recorded timestamp can be checked against when the key was
really pressed. No Qt; ctypes on libX11 and libXtst.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from data_schema.errors import SourceError
from drivers.clock import local_clock

_REVERT_TO_PARENT = 2
_CURRENT_TIME = 0


class XTestKeys:
    """One X connection that presses and releases keys through XTEST.

    Parameters
    ----------
    display
        X display name (``":99"``); ``None``: the ``DISPLAY`` environment variable.
    """

    def __init__(self, display: str | None = None) -> None:
        c = ctypes
        x11 = c.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        xtst = c.CDLL(ctypes.util.find_library("Xtst") or "libXtst.so.6")
        x11.XOpenDisplay.restype = c.c_void_p
        x11.XOpenDisplay.argtypes = [c.c_char_p]
        x11.XCloseDisplay.argtypes = [c.c_void_p]
        x11.XSync.argtypes = [c.c_void_p, c.c_int]
        x11.XStringToKeysym.restype = c.c_ulong
        x11.XStringToKeysym.argtypes = [c.c_char_p]
        x11.XKeysymToKeycode.restype = c.c_ubyte
        x11.XKeysymToKeycode.argtypes = [c.c_void_p, c.c_ulong]
        x11.XSetInputFocus.argtypes = [c.c_void_p, c.c_ulong, c.c_int, c.c_ulong]
        x11.XRaiseWindow.argtypes = [c.c_void_p, c.c_ulong]
        xtst.XTestFakeKeyEvent.argtypes = [c.c_void_p, c.c_uint, c.c_int, c.c_ulong]
        self._x11, self._xtst = x11, xtst
        self._d = x11.XOpenDisplay(display.encode() if display else None)
        if not self._d:
            raise SourceError(f"cannot open X display {display or '(DISPLAY)'} for XTEST")

    def keycode(self, key: str) -> int:
        """The keycode of X keysym ``key`` (``"1"``, ``"space"``, ``"BackSpace"``)."""
        sym = self._x11.XStringToKeysym(key.encode())
        code = self._x11.XKeysymToKeycode(self._d, sym) if sym else 0
        if not code:
            raise SourceError(f"no key for {key!r} on this X server (use X keysym names)")
        return int(code)

    def key(self, key: str | int, down: bool) -> tuple[float, float]:
        """Press (``down``) or release ``key`` (keysym name or keycode).

        Returns the LSL time read just before the request and the time once the server had
        processed it (``XSync``): the server's own stamp of the event lies between the two,
        give or take its millisecond resolution.
        """
        code = self.keycode(key) if isinstance(key, str) else int(key)
        t = local_clock()
        self._xtst.XTestFakeKeyEvent(self._d, code, int(bool(down)), _CURRENT_TIME)
        self._x11.XSync(self._d, 0)
        return t, local_clock()

    def focus(self, window: int) -> None:
        """Raise ``window`` and give it the keyboard focus (with no window manager running)."""
        self._x11.XRaiseWindow(self._d, window)
        self._x11.XSetInputFocus(self._d, window, _REVERT_TO_PARENT, _CURRENT_TIME)
        self._x11.XSync(self._d, 0)

    def close(self) -> None:
        if self._d:
            self._x11.XCloseDisplay(self._d)
            self._d = None

    def __enter__(self) -> XTestKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
