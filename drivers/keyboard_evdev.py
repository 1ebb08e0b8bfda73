"""The participant keyboard on Linux evdev: ``/dev/input/eventN`` read directly, no X needed.

The reader thread reads ``struct input_event`` records with :func:`os.read` (no extra
package: the ioctls are a few numbers). At open it asks the kernel to stamp events with
``CLOCK_MONOTONIC`` (``EVIOCSCLOCKID``), the clock liblsl reads on Linux, so the kernel's own
time of each key (taken in the input driver's interrupt, before any process sees it) is on
the LSL clock directly; a kernel that refuses keeps ``CLOCK_REALTIME``, which is mapped onto
the LSL clock with a measured offset (:class:`drivers.clock.UnixToLslMapping`). ``grab=True``
takes the device with ``EVIOCGRAB``: its keys then reach no other program (X, Wayland, a
console) until it is closed.

Values 0, 1 and 2 of a key event are up, down and auto-repeat (the kernel's repeat; repeats
are flagged, never counted as presses). Key names are the US-layout names of the key
positions, spelled as X11 keysyms lower-cased (``"1"``, ``"a"``, ``"space"``, ``"return"``,
``"up"``), so both backends name a US keyboard's keys alike; a non-US layout's letters are
named by position (the key labelled A on an AZERTY keyboard is ``"q"``). Digits and the
keys protocols use are the same on every layout.

Not tested here (this machine has no ``/dev/input`` and no ``/dev/uinput``): opening a real
device, ``EVIOCSCLOCKID``, ``EVIOCGRAB``, the unplug path (``ENODEV``) and the resync after
``SYN_DROPPED``. The decoding (:func:`decode_input_events`), which is where key names,
up/down/repeat and timestamps are made, is tested with packed ``struct input_event`` records.
On a machine with uinput, ``python-evdev``'s ``UInput`` (or ``evemu``) can drive the rest.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import os
import select
import struct
from collections.abc import Callable
from pathlib import Path

from data_schema.errors import SourceError
from drivers.clock import UnixToLslMapping, local_clock, monotonic_to_lsl_offset
from drivers.keyboard import KeyboardInfo, KeyEvent, ParticipantKeyboard

log = logging.getLogger(__name__)

#: ``struct input_event``: ``struct timeval`` (two longs; two unsigned longs for 32-bit
#: programs with 64-bit time, the same size), ``__u16 type``, ``__u16 code``, ``__s32 value``.
INPUT_EVENT = struct.Struct("@llHHi")

EV_SYN, EV_KEY = 0x00, 0x01
SYN_REPORT, SYN_DROPPED = 0, 3
KEY_MAX = 0x2FF
KEY_1, KEY_0 = 2, 11
#: Button codes (mouse, joystick, pen) share EV_KEY with keys; they are not keyboard keys.
BUTTON_CODES = (range(0x100, 0x160), range(0x2C0, 0x300))
CLOCK_MONOTONIC = 1


def _ioc(direction: int, nr: int, size: int) -> int:
    """An evdev ioctl request number (``_IOC`` with type ``'E'``)."""
    return (direction << 30) | (size << 16) | (ord("E") << 8) | nr


_IOC_WRITE, _IOC_READ = 1, 2
EVIOCGRAB = _ioc(_IOC_WRITE, 0x90, 4)
EVIOCSCLOCKID = _ioc(_IOC_WRITE, 0xA0, 4)


# Named as the kernel's macros, so they can be looked up in linux/input.h.
def EVIOCGNAME(length: int) -> int:
    return _ioc(_IOC_READ, 0x06, length)


def EVIOCGPHYS(length: int) -> int:
    return _ioc(_IOC_READ, 0x07, length)


def EVIOCGKEY(length: int) -> int:
    return _ioc(_IOC_READ, 0x18, length)


def EVIOCGBIT(ev: int, length: int) -> int:
    return _ioc(_IOC_READ, 0x20 + ev, length)


def _names() -> dict[int, str]:
    """Key code -> name (linux/input-event-codes.h; X11 keysym spellings, lower case)."""
    names = {KEY_1 + i: str(d) for i, d in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])}
    for first, row in ((16, "qwertyuiop"), (30, "asdfghjkl"), (44, "zxcvbnm")):
        names.update({first + i: c for i, c in enumerate(row)})
    names.update(
        {
            1: "escape", 12: "minus", 13: "equal", 14: "backspace", 15: "tab",
            26: "bracketleft", 27: "bracketright", 28: "return", 29: "control_l",
            39: "semicolon", 40: "apostrophe", 41: "grave", 42: "shift_l", 43: "backslash",
            51: "comma", 52: "period", 53: "slash", 54: "shift_r", 55: "kp_multiply",
            56: "alt_l", 57: "space", 58: "caps_lock", 69: "num_lock", 70: "scroll_lock",
            74: "kp_subtract", 78: "kp_add", 83: "kp_decimal", 96: "return",
            97: "control_r", 98: "kp_divide", 100: "alt_r", 102: "home", 103: "up",
            104: "prior", 105: "left", 106: "right", 107: "end", 108: "down", 109: "next",
            110: "insert", 111: "delete", 119: "pause", 125: "super_l", 126: "super_r",
        }
    )  # fmt: skip
    names.update({59 + i: f"f{i + 1}" for i in range(10)})  # F1..F10
    names.update({87: "f11", 88: "f12"})
    # The keypad is named by its digits, as app/keys.py and the X11 backend name it.
    keypad = {71: 7, 72: 8, 73: 9, 75: 4, 76: 5, 77: 6, 79: 1, 80: 2, 81: 3, 82: 0}
    names.update({code: str(d) for code, d in keypad.items()})
    return names


KEY_NAMES: dict[int, str] = _names()


def key_code_name(code: int) -> str:
    """The name of evdev key ``code`` (``KEY_1`` -> ``"1"``); ``"key<code>"`` if unnamed."""
    return KEY_NAMES.get(code, f"key{code}")


def decode_input_events(
    data: bytes, device: str, *, offset_s: float = 0.0, dropping: bool = False
) -> tuple[list[KeyEvent], bool]:
    """The key events in ``data``, a whole number of ``struct input_event`` records.

    A pure function: the reader feeds it what each ``os.read`` returned, with the
    ``dropping`` state it returned last time.

    Parameters
    ----------
    data
        Bytes read from an evdev device (a trailing partial record is ignored; the kernel
        never returns one).
    device
        Name put in each :class:`~drivers.keyboard.KeyEvent`.
    offset_s
        ``lsl = kernel_time + offset_s``: ``lsl - CLOCK_MONOTONIC`` (about 0) when the
        device stamps with ``CLOCK_MONOTONIC``, ``lsl - unix`` when it stamps with
        ``CLOCK_REALTIME``.
    dropping
        True after a ``SYN_DROPPED`` (the kernel's buffer for this reader overflowed): events
        up to and including the next ``SYN_REPORT`` are incomplete and discarded, as the
        kernel's documentation asks.

    Returns
    -------
    events, dropping
        Key events in order (value 0 up, 1 down, 2 auto-repeat: down with ``repeat``;
        buttons and non-key events are left out), and whether a ``SYN_DROPPED`` is still
        waiting for its ``SYN_REPORT``.
    """
    usable = len(data) - len(data) % INPUT_EVENT.size
    events: list[KeyEvent] = []
    for sec, usec, type_, code, value in INPUT_EVENT.iter_unpack(data[:usable]):
        if dropping:
            if type_ == EV_SYN and code == SYN_REPORT:
                dropping = False
            continue
        if type_ == EV_SYN and code == SYN_DROPPED:
            dropping = True
            continue
        if type_ != EV_KEY or value not in (0, 1, 2) or any(code in r for r in BUTTON_CODES):
            continue
        timestamp = sec + usec * 1e-6 + offset_s
        events.append(KeyEvent(key_code_name(code), value != 0, timestamp, value == 2, device))
    return events, dropping


def _has_syn_dropped(data: bytes) -> bool:
    usable = len(data) - len(data) % INPUT_EVENT.size
    return any(
        t == EV_SYN and c == SYN_DROPPED for _, _, t, c, _ in INPUT_EVENT.iter_unpack(data[:usable])
    )


def _bits(fd: int, ev: int, n_bits: int) -> bytes:
    return bytes(fcntl.ioctl(fd, EVIOCGBIT(ev, (n_bits + 7) // 8), bytes((n_bits + 7) // 8)))


def _has_bit(bits: bytes, n: int) -> bool:
    return bool(bits[n // 8] & (1 << (n % 8))) if n // 8 < len(bits) else False


def _string_ioctl(fd: int, request: Callable[[int], int]) -> str:
    try:
        raw = fcntl.ioctl(fd, request(256), bytes(256))
    except OSError:
        return ""
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


def _is_keyboard(fd: int) -> bool:
    """The device reports key events and has the number keys 1-0."""
    if not _has_bit(_bits(fd, 0, 32), EV_KEY):
        return False
    keys = _bits(fd, EV_KEY, KEY_MAX + 1)
    return all(_has_bit(keys, code) for code in range(KEY_1, KEY_0 + 1))


def _stable_paths() -> dict[str, str]:
    """``/dev/input/eventN`` -> its ``/dev/input/by-id`` or ``by-path`` link (stable names)."""
    out: dict[str, str] = {}
    for pattern in ("/dev/input/by-path/*", "/dev/input/by-id/*"):  # by-id wins
        for link in glob.glob(pattern):
            try:
                out[os.path.realpath(link)] = link
            except OSError:
                continue
    return out


def list_evdev_keyboards() -> list[KeyboardInfo]:
    """The evdev keyboards this user may read (``EV_KEY`` with number keys)."""
    found = []
    stable = _stable_paths()
    paths = sorted(glob.glob("/dev/input/event*"), key=lambda p: (len(p), p))
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # not ours to read (the input group), or gone
        try:
            if not _is_keyboard(fd):
                continue
            name = _string_ioctl(fd, EVIOCGNAME) or Path(path).name
            phys = _string_ioctl(fd, EVIOCGPHYS)
        except OSError:
            continue
        finally:
            os.close(fd)
        detail = f"evdev keyboard {path}" + (f", {phys}" if phys else "")
        if path in stable:
            detail += f"; stable name: evdev:{stable[path]}"
        found.append(KeyboardInfo(f"evdev:{path}", name, "evdev", detail))
    return found


class EvdevKeyboard(ParticipantKeyboard):
    """Key events of one evdev device, stamped by the kernel.

    Build it with :meth:`open` (or :func:`drivers.keyboard.open_keyboard`).
    """

    read_records = 64

    def __init__(
        self,
        info: KeyboardInfo,
        on_event: Callable[[KeyEvent], None],
        *,
        path: str,
        grab: bool = False,
    ):
        super().__init__(info, on_event)
        self._path = path
        self._grab = grab
        self._fd = -1
        self._grabbed = False
        self._offset_s = 0.0
        self._dropping = False
        self._held: set[str] = set()

    @classmethod
    def open(
        cls, path: str, on_event: Callable[[KeyEvent], None], *, grab: bool = False
    ) -> EvdevKeyboard:
        """Check that ``path`` is a readable evdev keyboard.

        Raises
        ------
        SourceError
            The path does not exist, cannot be read, or is not a keyboard.
        """
        fd = _open_device(path)
        try:
            if not _is_keyboard(fd):
                raise SourceError(
                    f"keyboard evdev:{path} is not a keyboard (no number keys); "
                    "list_keyboards() shows the keyboards here"
                )
            name = _string_ioctl(fd, EVIOCGNAME) or Path(path).name
            phys = _string_ioctl(fd, EVIOCGPHYS)
        except OSError as exc:
            raise SourceError(f"keyboard evdev:{path}: cannot query it ({exc})") from exc
        finally:
            os.close(fd)
        info = KeyboardInfo(f"evdev:{path}", name, "evdev", f"evdev keyboard {path} {phys}")
        return cls(info, on_event, path=path, grab=grab)

    # ---------------------------------------------------------------- reader thread
    def _setup(self) -> None:
        self._fd = _open_device(self._path)
        try:
            fcntl.ioctl(self._fd, EVIOCSCLOCKID, struct.pack("i", CLOCK_MONOTONIC))
        except OSError as exc:  # kernels before 3.4 stamp with CLOCK_REALTIME only
            mapping = UnixToLslMapping.measure()
            self._offset_s = mapping.offset
            self._clock_mapping = {
                "device_clock": "kernel input event time (CLOCK_REALTIME, us)",
                "clock": "lsl",
                "offset_s": mapping.offset,
                "method": f"EVIOCSCLOCKID refused ({exc}); lsl = unix + offset, measured at "
                "start (a clock step during the session, NTP or manual, is not followed)",
                "uncertainty_s": mapping.uncertainty,
            }
        else:
            offset, width = monotonic_to_lsl_offset()
            self._offset_s = offset
            self._clock_mapping = {
                "device_clock": "kernel input event time (CLOCK_MONOTONIC, us)",
                "clock": "lsl",
                "offset_s": offset,
                "method": "EVIOCSCLOCKID CLOCK_MONOTONIC: the kernel stamps on the LSL clock; "
                "offset_s = lsl - CLOCK_MONOTONIC, measured at start",
                "uncertainty_s": width,
            }
        self._clock_mapping["device"] = self._path
        if self._grab:
            try:
                fcntl.ioctl(self._fd, EVIOCGRAB, 1)
            except OSError as exc:
                raise SourceError(
                    f"keyboard evdev:{self._path}: cannot grab it ({os.strerror(exc.errno)}: "
                    "another program holds it); close that program or open without grab"
                ) from exc
            self._grabbed = True

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._fd, INPUT_EVENT.size * self.read_records)
        except BlockingIOError:
            return True
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                self.error = f"{self._path} was unplugged"
                log.error("keyboard %s: %s", self.info.spec, self.error)
                return False
            raise
        was_dropping = self._dropping
        events, self._dropping = decode_input_events(
            data, self.info.name, offset_s=self._offset_s, dropping=self._dropping
        )
        for event in events:
            if event.down:
                self._held.add(event.key)
            else:
                self._held.discard(event.key)
            self._deliver(event)
        if not self._dropping and (was_dropping or _has_syn_dropped(data)):
            self._resync()
        return True

    def _resync(self) -> None:
        """After lost events, release the keys the kernel says are up (read now, stamped now)."""
        log.warning("keyboard %s: the kernel dropped events (reader too slow)", self.info.spec)
        try:
            state = bytes(fcntl.ioctl(self._fd, EVIOCGKEY(96), bytes(96)))
        except OSError:
            return
        down = {key_code_name(c) for c in range(KEY_MAX + 1) if _has_bit(state, c)}
        now = local_clock()
        for key in sorted(self._held - down):
            self._held.discard(key)
            self._deliver(KeyEvent(key, False, now, False, self.info.name))

    def _teardown(self) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return
        if self._grabbed:
            try:
                fcntl.ioctl(fd, EVIOCGRAB, 0)
            except OSError:
                pass  # closing the descriptor releases the grab anyway
            self._grabbed = False
        os.close(fd)


def _open_device(path: str) -> int:
    """``os.open`` the device read-only and non-blocking, with errors people can act on."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SourceError(
            f"keyboard evdev:{path}: no such device; list_keyboards() shows the keyboards "
            "here (is it plugged in?)"
        ) from None
    except PermissionError:
        raise SourceError(
            f"keyboard evdev:{path}: permission denied; add this user to the 'input' group "
            "(sudo usermod -aG input $USER, then log in again) or use an x11: keyboard"
        ) from None
    except OSError as exc:
        raise SourceError(f"keyboard evdev:{path}: cannot open it ({exc.strerror})") from None
