"""The participant keyboard on X11: XInput2 raw key events of one input device, via ctypes.

Raw events (``XI_RawKeyPress`` / ``XI_RawKeyRelease``, XInput 2.2), selected on the root
window, reach this client whatever window has focus, and say which *slave* device (the
physical keyboard, or XTEST) produced them. The reader thread owns its own X connection; it
waits on the connection's socket with ``select()`` and a short timeout, so :meth:`close` is
quick.

Key names come from the X keymap (``XkbKeycodeToKeysym``, group 0, level 0, lower-cased):
``"1"``, ``"a"``, ``"space"``, ``"return"``, ``"up"``; keypad digits are named by their digit
and keypad Enter ``"return"``, as ``app/keys.py`` names Qt's keys.

Timing: the X server stamps each input event with ``CLOCK_MONOTONIC`` truncated to the
millisecond (32-bit, wraps every 49.7 days), the clock liblsl reads on Linux. A local server's
stamp therefore maps onto the LSL clock exactly up to that truncation, and the event is put at
the centre of its millisecond (:func:`stamp_centre_s`). The reader measures the relation at
start (round trips that fetch the server's time) and records it in ``clock_mapping``; a
server whose clock is not this machine's (a display forwarded from another computer) is
mapped with the measured offset instead. For a real keyboard the stamp is when the X server
read the event from the kernel, after the USB polling interval;
:mod:`drivers.keyboard_evdev` has the kernel's own time.

What was measured under Xvfb 21.1 (see the tests and ``benchmarks/bench_keyboard.py``):

- the server's stamp minus ``CLOCK_MONOTONIC`` read just before a request lies in [-1, 0] ms
  (median -0.45 ms): truncated ``CLOCK_MONOTONIC``, so the centre of the ms is the better time;
- holding a key (``xdotool keydown 3; sleep 3; xdotool keyup 3``) gives exactly one raw press
  and one raw release, while the focused window gets a KeyPress every 40 ms after 660 ms: the
  server's auto-repeat (XKB software repeat) makes no raw events, and raw events carry no
  repeat flag (``flags`` is 0). A press for a key the reader already holds is still flagged
  ``repeat``, in case another server behaves differently;
- raw events come once from the slave device and once more from its master (the same
  ``sourceid``); only the slave's are delivered;
- with ``grab=True`` (an active ``XIGrabDevice`` of the slave, which detaches it from its
  master while held), the grabbed device's keys no longer reach the focused window. The grab
  must itself ask for raw events: a client's own grab keeps the device's raw events from its
  root-window selection (other clients still get them, as XInput 2.1 promises).

Devices are selected with ``XIAllDevices`` and filtered here by device id, not selected one
id at a time: an unplugged and replugged keyboard (a new id, the same name) keeps being read,
and no request can name a device that has just gone away (an X protocol error, which Xlib's
default handler answers by ending the process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_schema.errors import SourceError
from drivers.clock import local_clock, monotonic_to_lsl_offset, x11_time
from drivers.keyboard import KeyboardInfo, KeyEvent, ParticipantKeyboard

log = logging.getLogger(__name__)

# ---------------------------------------------------------------- X11 / XInput2 constants
GENERIC_EVENT = 35
MAPPING_NOTIFY = 34
PROPERTY_NOTIFY = 28
PROPERTY_CHANGE_MASK = 1 << 22
XA_INTEGER = 19
PROP_MODE_REPLACE = 0
CURRENT_TIME = 0
GRAB_MODE_ASYNC = 1
GRAB_SUCCESS = 0

XI_ALL_DEVICES = 0
XI_KEY_PRESS = 2
XI_KEY_RELEASE = 3
XI_HIERARCHY_CHANGED = 11
XI_RAW_KEY_PRESS = 13
XI_RAW_KEY_RELEASE = 14
XI_MASTER_KEYBOARD = 2
XI_SLAVE_KEYBOARD = 4
XI_FLOATING_SLAVE = 5
XI_KEY_CLASS = 0
XI_KEY_REPEAT = 1 << 16
XI_SLAVE_ADDED = 1 << 2
XI_SLAVE_REMOVED = 1 << 3

ALL = "all"


# ---------------------------------------------------------------- ctypes structures
class XGenericEventCookie(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("extension", ctypes.c_int),
        ("evtype", ctypes.c_int),
        ("cookie", ctypes.c_uint),
        ("data", ctypes.c_void_p),
    ]


class XPropertyEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("atom", ctypes.c_ulong),
        ("time", ctypes.c_ulong),
        ("state", ctypes.c_int),
    ]


class XEvent(ctypes.Union):
    _fields_ = [
        ("type", ctypes.c_int),
        ("xcookie", XGenericEventCookie),
        ("xproperty", XPropertyEvent),
        ("pad", ctypes.c_long * 24),
    ]


class XIEventMask(ctypes.Structure):
    _fields_ = [
        ("deviceid", ctypes.c_int),
        ("mask_len", ctypes.c_int),
        ("mask", ctypes.POINTER(ctypes.c_ubyte)),
    ]


class XIAnyClassInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("sourceid", ctypes.c_int)]


class XIDeviceInfo(ctypes.Structure):
    _fields_ = [
        ("deviceid", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("use", ctypes.c_int),
        ("attachment", ctypes.c_int),
        ("enabled", ctypes.c_int),
        ("num_classes", ctypes.c_int),
        ("classes", ctypes.POINTER(ctypes.POINTER(XIAnyClassInfo))),
    ]


class XIValuatorState(ctypes.Structure):
    _fields_ = [
        ("mask_len", ctypes.c_int),
        ("mask", ctypes.POINTER(ctypes.c_ubyte)),
        ("values", ctypes.POINTER(ctypes.c_double)),
    ]


class XIRawEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("extension", ctypes.c_int),
        ("evtype", ctypes.c_int),
        ("time", ctypes.c_ulong),
        ("deviceid", ctypes.c_int),
        ("sourceid", ctypes.c_int),
        ("detail", ctypes.c_int),
        ("flags", ctypes.c_int),
        ("valuators", XIValuatorState),
        ("raw_values", ctypes.POINTER(ctypes.c_double)),
    ]


class XIHierarchyInfo(ctypes.Structure):
    _fields_ = [
        ("deviceid", ctypes.c_int),
        ("attachment", ctypes.c_int),
        ("use", ctypes.c_int),
        ("enabled", ctypes.c_int),
        ("flags", ctypes.c_int),
    ]


class XIHierarchyEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("extension", ctypes.c_int),
        ("evtype", ctypes.c_int),
        ("time", ctypes.c_ulong),
        ("flags", ctypes.c_int),
        ("num_info", ctypes.c_int),
        ("info", ctypes.POINTER(XIHierarchyInfo)),
    ]


IO_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
IO_ERROR_EXIT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


class _ConnectionGuard:
    """Keeps a lost X connection of this module from ending the process.

    When the X server goes away, Xlib calls the process-wide fatal-I/O-error handler, whose
    default prints "XIO: fatal IO error" and calls ``exit(1)``, and then (libX11 >= 1.7) the
    connection's own exit handler, whose default also calls ``exit(1)``. This handler returns
    for the connections registered here (their exit handler, set by the keyboard, returns
    too) and hands every other connection to the handler that was there before, so other
    Xlib users in the process behave exactly as without it.

    It is installed once per process, when the keyboard module first loads Xlib; the set of
    registered connections is the only state, guarded by a lock.
    """

    def __init__(self, x11: ctypes.CDLL):
        self._ours: set[int] = set()
        self._lock = threading.Lock()
        self._handler = IO_ERROR_HANDLER(self._on_io_error)  # must live as long as Xlib
        previous = x11.XSetIOErrorHandler(self._handler)
        self._previous = IO_ERROR_HANDLER(previous) if previous else None

    def add(self, dpy: int) -> None:
        with self._lock:
            self._ours.add(int(dpy))

    def discard(self, dpy: int) -> None:
        with self._lock:
            self._ours.discard(int(dpy))

    def _on_io_error(self, dpy: int | None) -> int:
        with self._lock:
            ours = int(dpy or 0) in self._ours
        if ours:
            log.debug("X connection %#x lost", dpy or 0)
            return 0
        if self._previous is not None:
            return self._previous(dpy)
        return 0


@dataclass(frozen=True)
class _Libs:
    x11: ctypes.CDLL
    xi: ctypes.CDLL
    guard: _ConnectionGuard | None


def _load(names: tuple[str, ...], soname: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(names[0]) or soname
    return ctypes.CDLL(path)


@functools.cache
def _libs() -> _Libs:
    """libX11 and libXi with the prototypes used here (loaded once per process).

    Raises
    ------
    SourceError
        A library is missing.
    """
    try:
        x11 = _load(("X11",), "libX11.so.6")
        xi = _load(("Xi",), "libXi.so.6")
    except OSError as exc:
        raise SourceError(
            f"x11 keyboard: cannot load libX11/libXi ({exc}); install libx11-6 and libxi6"
        ) from exc
    vp, c_int, c_ulong = ctypes.c_void_p, ctypes.c_int, ctypes.c_ulong
    ip, ui, maskp = ctypes.POINTER(c_int), ctypes.c_uint, ctypes.POINTER(XIEventMask)
    protos: dict[str, tuple[Any, list[Any]]] = {
        "XInitThreads": (c_int, []),
        "XOpenDisplay": (vp, [ctypes.c_char_p]),
        "XCloseDisplay": (c_int, [vp]),
        "XDisplayString": (ctypes.c_char_p, [vp]),
        "XDefaultRootWindow": (c_ulong, [vp]),
        "XConnectionNumber": (c_int, [vp]),
        "XPending": (c_int, [vp]),
        "XNextEvent": (c_int, [vp, ctypes.POINTER(XEvent)]),
        "XCheckTypedWindowEvent": (c_int, [vp, c_ulong, c_int, ctypes.POINTER(XEvent)]),
        "XGetEventData": (c_int, [vp, ctypes.POINTER(XGenericEventCookie)]),
        "XFreeEventData": (None, [vp, ctypes.POINTER(XGenericEventCookie)]),
        "XQueryExtension": (c_int, [vp, ctypes.c_char_p, ip, ip, ip]),
        "XSync": (c_int, [vp, c_int]),
        "XFlush": (c_int, [vp]),
        "XkbKeycodeToKeysym": (c_ulong, [vp, ctypes.c_ubyte, c_int, c_int]),
        "XKeysymToString": (ctypes.c_char_p, [c_ulong]),
        "XRefreshKeyboardMapping": (c_int, [ctypes.POINTER(XEvent)]),
        "XCreateSimpleWindow": (c_ulong, [vp, c_ulong, c_int, c_int, ui, ui, ui, c_ulong, c_ulong]),
        "XDestroyWindow": (c_int, [vp, c_ulong]),
        "XSelectInput": (c_int, [vp, c_ulong, ctypes.c_long]),
        "XInternAtom": (c_ulong, [vp, ctypes.c_char_p, c_int]),
        "XChangeProperty": (
            c_int,
            [vp, c_ulong, c_ulong, c_ulong, c_int, c_int, ctypes.c_void_p, c_int],
        ),
    }
    for name, (restype, argtypes) in protos.items():
        fn = getattr(x11, name)
        fn.restype, fn.argtypes = restype, argtypes
    xi_protos: dict[str, tuple[Any, list[Any]]] = {
        "XIQueryVersion": (c_int, [vp, ip, ip]),
        "XIQueryDevice": (ctypes.POINTER(XIDeviceInfo), [vp, c_int, ip]),
        "XIFreeDeviceInfo": (None, [ctypes.POINTER(XIDeviceInfo)]),
        "XISelectEvents": (c_int, [vp, c_ulong, maskp, c_int]),
        "XIGrabDevice": (c_int, [vp, c_int, c_ulong, c_ulong, c_ulong, c_int, c_int, c_int, maskp]),
        "XIUngrabDevice": (c_int, [vp, c_int, c_ulong]),
    }
    for name, (restype, argtypes) in xi_protos.items():
        fn = getattr(xi, name)
        fn.restype, fn.argtypes = restype, argtypes
    # The reader thread and any other Xlib user in this process (a GUI toolkit) then lock
    # Xlib's shared state. libX11 >= 1.8 does this itself; calling it again is harmless.
    x11.XInitThreads()
    # libX11 >= 1.7 lets a lost connection end without exit(): see _ConnectionGuard. With an
    # older libX11 a vanished X server ends the process, as it ends any X program.
    guard = None
    if hasattr(x11, "XSetIOErrorExitHandler"):
        x11.XSetIOErrorExitHandler.restype = None
        x11.XSetIOErrorExitHandler.argtypes = [vp, IO_ERROR_EXIT_HANDLER, vp]
        x11.XSetIOErrorHandler.restype = vp
        x11.XSetIOErrorHandler.argtypes = [IO_ERROR_HANDLER]
        guard = _ConnectionGuard(x11)
    return _Libs(x11, xi, guard)


# ---------------------------------------------------------------- helpers
def _display_name() -> str:
    return os.environ.get("DISPLAY", "")


@contextmanager
def _connection() -> Iterator[int]:
    """A short-lived X connection for a query; raises SourceError if there is no display."""
    lib = _libs()
    name = _display_name()
    if not name:
        raise SourceError(
            "x11 keyboard: no X display (DISPLAY is not set); run on the participant's X "
            "session or use an evdev:/dev/input/eventN keyboard"
        )
    dpy = lib.x11.XOpenDisplay(name.encode())
    if not dpy:
        raise SourceError(
            f"x11 keyboard: cannot open X display '{name}'; check DISPLAY and that this user "
            "may connect to it (xhost, XAUTHORITY)"
        )
    exit_handler = _protect(lib, dpy, lambda *_: None)
    try:
        yield dpy
    finally:
        lib.x11.XCloseDisplay(dpy)
        if lib.guard is not None:
            lib.guard.discard(dpy)
        del exit_handler


def _protect(lib: _Libs, dpy: int, on_lost: Callable[[int, int], None]) -> Any:
    """Let ``dpy`` die without ending the process; ``on_lost`` runs in the failing call.

    Returns the ctypes callback, which the caller must keep alive with the connection.
    """
    if lib.guard is None:
        return None
    handler = IO_ERROR_EXIT_HANDLER(on_lost)
    lib.x11.XSetIOErrorExitHandler(dpy, handler, None)
    lib.guard.add(dpy)
    return handler


def _xi_opcode(dpy: int) -> int:
    """The XInputExtension's major opcode, after checking the server speaks XInput 2.2."""
    lib = _libs()
    opcode, event, error = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    if not lib.x11.XQueryExtension(
        dpy, b"XInputExtension", ctypes.byref(opcode), ctypes.byref(event), ctypes.byref(error)
    ):
        raise SourceError("x11 keyboard: the X server has no XInput extension; use evdev:")
    # Called once per connection: asking again for another version is a BadValue error.
    major, minor = ctypes.c_int(2), ctypes.c_int(2)
    status = lib.xi.XIQueryVersion(dpy, ctypes.byref(major), ctypes.byref(minor))
    if status != 0 or (major.value, minor.value) < (2, 2):
        raise SourceError(
            f"x11 keyboard: the X server offers XInput {major.value}.{minor.value}, 2.2 is "
            "needed; use an evdev: keyboard"
        )
    return opcode.value


@dataclass(frozen=True)
class X11Device:
    """One X input device that produces key events."""

    id: int
    name: str
    floating: bool
    master: str

    @property
    def synthetic(self) -> bool:
        """An XTEST device: events made by programs (xdotool, test harnesses)."""
        return "XTEST" in self.name

    def describe(self) -> str:
        where = (
            "floating: its keys reach no window"
            if self.floating
            else f"slave keyboard of '{self.master}'"
        )
        made = ", synthetic events from XTEST (xdotool)" if self.synthetic else ""
        return f"X input device id {self.id}, {where}{made}"


def _event_mask(device_id: int, *evtypes: int) -> XIEventMask:
    """An XIEventMask for ``device_id`` with the bits of ``evtypes`` set (XISetMask)."""
    bits = (ctypes.c_ubyte * 4)()
    for evtype in evtypes:
        bits[evtype >> 3] |= 1 << (evtype & 7)
    mask = XIEventMask(device_id, len(bits), bits)
    mask._bits = bits  # the struct holds a bare pointer: keep the bytes alive with it
    return mask


def _keyboards(dpy: int) -> list[X11Device]:
    """Slave keyboards, and floating slaves that have keys, in device-id order."""
    lib = _libs()
    n = ctypes.c_int()
    infos = lib.xi.XIQueryDevice(dpy, XI_ALL_DEVICES, ctypes.byref(n))
    if not infos:
        return []
    try:
        masters = {}
        found = []
        for i in range(n.value):
            d = infos[i]
            name = (d.name or b"").decode("utf-8", "replace")
            if d.use == XI_MASTER_KEYBOARD:
                masters[d.deviceid] = name
            has_keys = any(d.classes[c].contents.type == XI_KEY_CLASS for c in range(d.num_classes))
            if d.use == XI_SLAVE_KEYBOARD or (d.use == XI_FLOATING_SLAVE and has_keys):
                found.append((d.deviceid, name, d.use == XI_FLOATING_SLAVE, d.attachment))
    finally:
        lib.xi.XIFreeDeviceInfo(infos)
    return [
        X11Device(id=i, name=name, floating=fl, master=masters.get(att, ""))
        for i, name, fl, att in sorted(found)
    ]


def list_x11_keyboards() -> list[KeyboardInfo]:
    """The X display's keyboards (``$DISPLAY``), as :class:`KeyboardInfo`.

    Raises
    ------
    SourceError
        No display, or no XInput 2.2 (:func:`drivers.keyboard.list_keyboards` catches it).
    """
    with _connection() as dpy:
        _xi_opcode(dpy)
        devices = _keyboards(dpy)
    seen: set[str] = set()
    out = []
    for d in devices:
        if d.name in seen:  # one spec reads every device of that name
            continue
        seen.add(d.name)
        out.append(KeyboardInfo(f"x11:{d.name}", d.name, "x11", d.describe()))
    return out


def key_name(level0: str | None, level1: str | None = None) -> str | None:
    """A key's name from its X keysym names (group 0, levels 0 and 1), as protocols write it.

    Lower-cased keysym names (``Return`` -> ``return``, ``BackSpace`` -> ``backspace``), with
    the keypad named as Qt names it (``app/keys.py``): digits by their digit (level 1 of a
    keypad key is its NumLock meaning), keypad Enter ``return``. None for no keysym.
    """
    if not level0:
        return None
    if level0.startswith("KP_"):
        if level0 == "KP_Enter":
            return "return"
        if level1 and level1.startswith("KP_") and level1[3:].isdigit():
            return level1[3:]
    return level0.lower()


def stamp_centre_s() -> float:
    """How long after its X server stamp a local input event lies on average, in seconds.

    The X server (``os/utils.c``, ``GetTimeInMillis``) reads ``CLOCK_MONOTONIC_COARSE`` when
    that clock ticks every millisecond or faster (a kernel with HZ=1000) and
    ``CLOCK_MONOTONIC`` otherwise, and truncates to the ms: the event lies 0 to 1 ms after
    its stamp, plus 0 to one tick with the coarse clock. Half of each is the centre.
    """
    coarse = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)  # 6 on Linux; Python 3.11 lacks it
    try:
        tick = time.clock_getres(coarse)
    except OSError:
        tick = 1.0
    return 0.0005 + (tick / 2 if tick <= 0.001 else 0.0)


def _measure_server_clock(x11: ctypes.CDLL, dpy: int, window: int, n: int = 20) -> dict[str, Any]:
    """Fetch the server's time ``n`` times (a property change's timestamp) around LSL reads.

    Returns the median round trip and ``offset_s``, the median of
    ``mid-point LSL time - (stamp + 0.5 ms)``; for a server on this machine that is zero
    give or take half a round trip.
    """
    atom = x11.XInternAtom(dpy, b"RECALL_LAB_CLOCK", 0)
    value = ctypes.c_long(0)
    ev = XEvent()
    mids, stamps, trips = [], [], []
    for _ in range(n):
        t0 = local_clock()
        x11.XChangeProperty(
            dpy, window, atom, XA_INTEGER, 32, PROP_MODE_REPLACE, ctypes.byref(value), 1
        )
        x11.XSync(dpy, 0)
        t1 = local_clock()
        if x11.XCheckTypedWindowEvent(dpy, window, PROPERTY_NOTIFY, ctypes.byref(ev)):
            mids.append((t0 + t1) / 2)
            trips.append(t1 - t0)
            stamps.append(int(ev.xproperty.time))
    if not stamps:
        return {"n_round_trips": 0}
    wrap = 2**32
    # Centred modulo: a remote server's clock may be anywhere in its 49.7-day cycle.
    off_ms = [((m * 1000.0 - (s + 0.5)) + wrap / 2) % wrap - wrap / 2 for m, s in zip(mids, stamps)]
    return {
        "n_round_trips": len(stamps),
        "round_trip_s_median": float(np.median(trips)),
        "offset_s": float(np.median(off_ms)) / 1000.0,
        "offset_s_spread": (float(np.max(off_ms)) - float(np.min(off_ms))) / 1000.0,
    }


# ---------------------------------------------------------------- the keyboard
class X11Keyboard(ParticipantKeyboard):
    """XInput2 raw key events of the X input device(s) named ``name`` (``"all"``: every one).

    Build it with :meth:`open` (or :func:`drivers.keyboard.open_keyboard`), which checks
    that the display and the device exist.
    """

    #: Local server: its clock must agree with CLOCK_MONOTONIC to within this (seconds).
    local_tolerance_s = 0.005

    def __init__(
        self,
        info: KeyboardInfo,
        on_event: Callable[[KeyEvent], None],
        *,
        name: str,
        display: str,
        grab: bool = False,
    ):
        super().__init__(info, on_event)
        self._name = name
        self._display = display
        self._grab = grab
        self._dpy: int | None = None
        self._window = 0
        self._opcode = -1
        self._offset_s = 0.0005
        self._wanted: dict[int, str] = {}  # device id -> name, of the devices read
        self._grabbed: set[int] = set()
        self._held: set[tuple[int, int]] = set()  # (device id, keycode) currently down
        self._names: dict[int, str] = {}  # keycode -> key name, until the keymap changes
        self._dead = False
        self._exit_handler: Any = None  # the ctypes callback must outlive the connection
        self._event = XEvent()

    @classmethod
    def open(
        cls, name: str, on_event: Callable[[KeyEvent], None], *, grab: bool = False
    ) -> X11Keyboard:
        """Check that ``$DISPLAY`` has XInput 2.2 and a keyboard called ``name``.

        Parameters
        ----------
        name
            The device's name as ``xinput list`` shows it (exact, or differing only in case;
            every device of that name is read), or ``"all"``.
        on_event
            See :class:`drivers.keyboard.ParticipantKeyboard`.
        grab
            Grab the device(s) actively, so their keys stop reaching the focused window.

        Raises
        ------
        SourceError
            No display, no XInput 2.2, or no such keyboard (the message lists those there).
        """
        with _connection() as dpy:
            _xi_opcode(dpy)
            display = (_libs().x11.XDisplayString(dpy) or b"").decode()
            devices = _keyboards(dpy)
        if name.lower() == ALL:
            if grab:
                raise SourceError(
                    "keyboard x11:all cannot be grabbed (the experimenter's keyboard would "
                    "go dead too); name the participant's keyboard"
                )
            info = KeyboardInfo(
                "x11:all", "all", "x11", f"every X keyboard on {display} ({len(devices)} now)"
            )
            return cls(info, on_event, name=ALL, display=display)
        match = [d for d in devices if d.name == name] or [
            d for d in devices if d.name.lower() == name.lower()
        ]
        if not match:
            names = ", ".join(f"'{d.name}'" for d in devices) or "none"
            raise SourceError(
                f"keyboard x11:{name}: no X keyboard of that name on display {display}; "
                f"there are {names} (xinput list shows them)"
            )
        real = match[0].name
        detail = "; ".join(d.describe() for d in match)
        info = KeyboardInfo(f"x11:{real}", real, "x11", detail)
        return cls(info, on_event, name=real, display=display, grab=grab)

    # ---------------------------------------------------------------- reader thread
    def _setup(self) -> None:
        lib = _libs()
        x11 = lib.x11
        dpy = x11.XOpenDisplay(self._display.encode())
        if not dpy:
            raise SourceError(f"keyboard {self.info.spec}: cannot open X display {self._display}")
        self._dpy = dpy
        self._exit_handler = _protect(lib, dpy, self._connection_lost)
        self._opcode = _xi_opcode(dpy)
        root = x11.XDefaultRootWindow(dpy)
        self._refresh_devices()
        if not self._wanted and self._name != ALL:
            raise SourceError(
                f"keyboard {self.info.spec}: the device went away before it could be read; "
                "reconnect it and try again"
            )
        self._window = x11.XCreateSimpleWindow(dpy, root, 0, 0, 1, 1, 0, 0, 0)
        x11.XSelectInput(dpy, self._window, PROPERTY_CHANGE_MASK)
        self._clock_mapping = self._map_clock(x11, dpy)
        # XIAllDevices, filtered by id in _handle: see the module docstring.
        mask = _event_mask(
            XI_ALL_DEVICES, XI_RAW_KEY_PRESS, XI_RAW_KEY_RELEASE, XI_HIERARCHY_CHANGED
        )
        lib.xi.XISelectEvents(dpy, root, ctypes.byref(mask), 1)
        if self._grab:
            for dev_id in list(self._wanted):
                self._grab_device(dev_id, raise_on_failure=True)
        x11.XSync(dpy, 0)  # the selection is in force before start() returns
        log.info(
            "keyboard %s: reading device(s) %s, X server clock offset %.3f ms",
            self.info.spec,
            sorted(self._wanted),
            1e3 * self._clock_mapping.get("server_offset_measured_s", float("nan")),
        )

    def _map_clock(self, x11: ctypes.CDLL, dpy: int) -> dict[str, Any]:
        mono_offset, mono_width = monotonic_to_lsl_offset()
        measured = _measure_server_clock(x11, dpy, self._window)
        server_offset = measured.get("offset_s")
        local = server_offset is not None and (
            abs(server_offset - mono_offset)
            < self.local_tolerance_s + measured.get("round_trip_s_median", 0.0)
        )
        centre = stamp_centre_s()
        if local or server_offset is None:
            # The server's stamp is CLOCK_MONOTONIC truncated to the ms: adding half a ms
            # puts the event at the centre of that ms, so the error is about +-0.5 ms (plus
            # the read delay) instead of 0 to 1 ms, always early.
            self._offset_s = mono_offset + centre
            method = (
                f"lsl = server_ms / 1000 + {centre:g} + (lsl - CLOCK_MONOTONIC); the server "
                "stamps with CLOCK_MONOTONIC truncated to the ms"
                + (", read from CLOCK_MONOTONIC_COARSE" if centre > 0.0005 else "")
                + f"; +{centre * 1e3:g} ms is the centre of what the stamp covers"
            )
            if server_offset is None:
                method += "; the server's clock could not be measured"
        else:
            self._offset_s = server_offset + 0.0005
            method = (  # the measurement already includes any coarse-clock lag
                "lsl = server_ms / 1000 + offset_s, offset measured by property round trips at "
                "start: the X server's clock is not this machine's CLOCK_MONOTONIC (a remote "
                "display?); drift during the session is not corrected"
            )
            log.warning(
                "keyboard %s: the X server's clock is %.1f s away from this machine's; "
                "mapping it with the measured offset (drift not corrected)",
                self.info.spec,
                server_offset,
            )
        return {
            "device_clock": "X server time (32-bit ms of CLOCK_MONOTONIC, truncated)",
            "clock": "lsl",
            "offset_s": self._offset_s,
            "method": method,
            "server_is_local": bool(local),
            "server_offset_measured_s": server_offset,
            "server_offset_spread_s": measured.get("offset_s_spread"),
            "round_trip_s_median": measured.get("round_trip_s_median"),
            "n_round_trips": measured.get("n_round_trips", 0),
            "monotonic_to_lsl_s": mono_offset,
            "monotonic_to_lsl_uncertainty_s": mono_width,
            "display": self._display,
        }

    def _connection_lost(self, dpy: int | None, data: int | None) -> None:
        # Called by Xlib inside the reader thread; returning (instead of exit()) leaves the
        # connection dead, and the reader then ends.
        self._dead = True

    def _refresh_devices(self) -> None:
        before = dict(self._wanted)
        devices = _keyboards(self._dpy)
        if self._name == ALL:
            self._wanted = {d.id: d.name for d in devices}
        else:
            self._wanted = {d.id: d.name for d in devices if d.name == self._name}
        for dev_id in before.keys() - self._wanted.keys():
            log.warning("keyboard %s: device id %d went away", self.info.spec, dev_id)
            self._grabbed.discard(dev_id)
            self._held = {h for h in self._held if h[0] != dev_id}
        started = bool(self._window)  # not the first look, in _setup
        for dev_id in self._wanted.keys() - before.keys():
            if not started:
                continue
            log.log(
                logging.INFO if self._name == ALL else logging.WARNING,
                "keyboard %s: device id %d (re)appeared, reading it",
                self.info.spec,
                dev_id,
            )
            if self._grab:
                self._grab_device(dev_id, raise_on_failure=False)

    def _grab_device(self, dev_id: int, *, raise_on_failure: bool) -> None:
        lib = _libs()
        root = lib.x11.XDefaultRootWindow(self._dpy)
        # The grab must ask for the raw events itself: under Xvfb 21.1 a client's own grab
        # keeps the device's raw events from its root-window selection (other clients still
        # get them). Device events (XI_KeyPress) are not wanted: raw events carry everything.
        mask = _event_mask(dev_id, XI_RAW_KEY_PRESS, XI_RAW_KEY_RELEASE)
        status = lib.xi.XIGrabDevice(
            self._dpy, dev_id, root, CURRENT_TIME, 0, GRAB_MODE_ASYNC, GRAB_MODE_ASYNC, 0,
            ctypes.byref(mask),
        )  # fmt: skip
        if status == GRAB_SUCCESS:
            self._grabbed.add(dev_id)
            return
        message = (
            f"keyboard {self.info.spec}: cannot grab X device {dev_id} (status {status}: "
            "another program holds it); close that program or open without grab"
        )
        if raise_on_failure:
            raise SourceError(message)
        log.warning(message)

    def _read(self, timeout: float) -> bool:
        x11 = _libs().x11
        dpy = self._dpy
        if not x11.XPending(dpy) and not self._dead:
            select.select([x11.XConnectionNumber(dpy)], [], [], timeout)
        while not self._dead and x11.XPending(dpy):
            x11.XNextEvent(dpy, ctypes.byref(self._event))
            self._handle(x11, self._event, local_clock())
        if self._dead:
            self.error = f"lost the connection to X display {self._display}"
            log.error("keyboard %s: %s", self.info.spec, self.error)
            return False
        return True

    def _handle(self, x11: ctypes.CDLL, ev: XEvent, read_time: float) -> None:
        if ev.type == MAPPING_NOTIFY:
            x11.XRefreshKeyboardMapping(ctypes.byref(ev))
            self._names.clear()
            return
        cookie = ev.xcookie
        if ev.type != GENERIC_EVENT or cookie.extension != self._opcode:
            return
        if not x11.XGetEventData(self._dpy, ctypes.byref(cookie)):
            return
        try:
            evtype = cookie.evtype
            if evtype in (XI_RAW_KEY_PRESS, XI_RAW_KEY_RELEASE):
                raw = ctypes.cast(cookie.data, ctypes.POINTER(XIRawEvent)).contents
                dev_id, code, stamp, flags = raw.deviceid, raw.detail, raw.time, raw.flags
            elif evtype == XI_HIERARCHY_CHANGED:
                hier = ctypes.cast(cookie.data, ctypes.POINTER(XIHierarchyEvent)).contents
                if hier.flags & (XI_SLAVE_ADDED | XI_SLAVE_REMOVED):
                    self._refresh_devices()
                return
            else:
                return
        finally:
            x11.XFreeEventData(self._dpy, ctypes.byref(cookie))
        name = self._wanted.get(dev_id)
        if name is None:  # another device, or the master's copy of a slave's event
            return
        down = evtype == XI_RAW_KEY_PRESS
        held = (dev_id, code)
        repeat = bool(flags & XI_KEY_REPEAT) or (down and held in self._held)
        if down:
            self._held.add(held)
        else:
            self._held.discard(held)
        timestamp = x11_time(stamp, read_time, offset_s=self._offset_s)
        self._deliver(KeyEvent(self._key(x11, code), down, timestamp, repeat, name))

    def _key(self, x11: ctypes.CDLL, code: int) -> str:
        name = self._names.get(code)
        if name is None:

            def sym(level: int) -> str | None:
                s = x11.XKeysymToString(x11.XkbKeycodeToKeysym(self._dpy, code, 0, level))
                return s.decode("latin-1") if s else None

            name = key_name(sym(0), sym(1)) or f"keycode{code}"
            self._names[code] = name
        return name

    def _teardown(self) -> None:
        dpy, self._dpy = self._dpy, None
        if not dpy:
            return
        x11 = _libs().x11
        if not self._dead:
            for dev_id in self._grabbed:
                _libs().xi.XIUngrabDevice(dpy, dev_id, CURRENT_TIME)
            self._grabbed.clear()
            if self._window:
                x11.XDestroyWindow(dpy, self._window)
            x11.XSync(dpy, 0)
        x11.XCloseDisplay(dpy)  # also after a lost connection: frees Xlib's memory
        if _libs().guard is not None:
            _libs().guard.discard(dpy)
        self._window = 0


def server_time_probe(n: int = 200) -> dict[str, Any]:
    """Measure the X server's clock against the LSL clock (``$DISPLAY``), for benchmarks.

    Returns
    -------
    dict
        ``offset_s`` (median of LSL mid-point minus the stamp's centre), its spread, the
        round trip, and ``stamp_minus_monotonic_ms`` quantiles (stamp minus
        ``CLOCK_MONOTONIC`` read just before the request, in ms: in [-1, 0] plus the request
        delay if the server stamps with truncated CLOCK_MONOTONIC).
    """
    lib = _libs()
    with _connection() as dpy:
        x11 = lib.x11
        root = x11.XDefaultRootWindow(dpy)
        win = x11.XCreateSimpleWindow(dpy, root, 0, 0, 1, 1, 0, 0, 0)
        x11.XSelectInput(dpy, win, PROPERTY_CHANGE_MASK)
        atom = x11.XInternAtom(dpy, b"RECALL_LAB_CLOCK", 0)
        value = ctypes.c_long(0)
        ev = XEvent()
        diffs = []
        for _ in range(n):
            m0 = time.clock_gettime(time.CLOCK_MONOTONIC)
            x11.XChangeProperty(dpy, win, atom, XA_INTEGER, 32, 0, ctypes.byref(value), 1)
            x11.XSync(dpy, 0)
            m1 = time.clock_gettime(time.CLOCK_MONOTONIC)
            if x11.XCheckTypedWindowEvent(dpy, win, PROPERTY_NOTIFY, ctypes.byref(ev)):
                s = int(ev.xproperty.time)
                diffs.append((s - (m0 * 1000.0) % 2**32, (m1 - m0) * 1000.0))
        summary = _measure_server_clock(x11, dpy, win, n=n)
        x11.XDestroyWindow(dpy, win)
    d = np.array(diffs)
    return {
        **summary,
        "stamp_minus_monotonic_ms_p1_p50_p99": np.percentile(d[:, 0], [1, 50, 99]).tolist(),
        "round_trip_ms_p50_p99": np.percentile(d[:, 1], [50, 99]).tolist(),
    }
