"""The participant keyboard read from the device, whatever window has focus.

X11: a real Xvfb with openbox, the reader's own X connection, keys injected through XTEST by
``xdotool`` (one ``xdotool -`` process reading commands from a pipe, so no process start-up
lies between the LSL time read just before a command and the key). A second X client (``xev``)
holds the focus and shows what the focused window receives.

evdev: this machine has no ``/dev/input`` and no ``/dev/uinput``; the decoding is tested with
packed ``struct input_event`` records, and the reader thread through a FIFO (which refuses
the evdev ioctls, so the CLOCK_REALTIME fallback is what runs).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from data_schema.errors import RecallLabError
from drivers.clock import local_clock, x11_time
from drivers.keyboard import KeyboardInfo, KeyEvent, list_keyboards, open_keyboard
from drivers.keyboard_evdev import (
    EV_KEY,
    EV_SYN,
    EVIOCGBIT,
    EVIOCGKEY,
    EVIOCGNAME,
    EVIOCGRAB,
    EVIOCSCLOCKID,
    INPUT_EVENT,
    SYN_DROPPED,
    SYN_REPORT,
    EvdevKeyboard,
    decode_input_events,
    list_evdev_keyboards,
)
from drivers.keyboard_x11 import key_name, stamp_centre_s
from drivers.xtest import XTestKeys

XVFB = shutil.which("Xvfb")
XDOTOOL = shutil.which("xdotool")
XEV = shutil.which("xev")
XTEST_KEYBOARD = "Virtual core XTEST keyboard"

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------------- X server fixtures
def _read_display_number(fd: int, timeout: float) -> str:
    """What Xvfb writes to ``-displayfd`` once it accepts connections: ``N\\n``."""
    buf = b""
    end = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RuntimeError("Xvfb did not report its display number")
        chunk = os.read(fd, 64)
        if not chunk:
            raise RuntimeError("Xvfb exited before it was ready")
        buf += chunk
    return buf.decode().strip()


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    r, w = os.pipe()
    try:
        proc = subprocess.Popen(
            [XVFB, "-displayfd", str(w), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
             "-noreset"],
            pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(w)
        w = -1
        try:
            number = _read_display_number(r, timeout=30)
        except RuntimeError:
            _stop(proc)
            raise
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return proc, f":{number}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _run(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, timeout=10, check=True).stdout


def _window_manager_running() -> bool:
    """openbox marks the root window (EWMH) once it manages windows."""
    root = subprocess.run(
        ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], capture_output=True, text=True, timeout=5
    )
    return "window id" in root.stdout


@pytest.fixture(scope="module")
def x_display() -> Iterator[str]:
    """A private Xvfb (``-displayfd`` picks a free number) with openbox; sets ``DISPLAY``."""
    if not XVFB:
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    if not XDOTOOL:
        pytest.skip("xdotool is not installed (apt install xdotool)")
    xvfb, display = _start_xvfb()
    procs = [xvfb]
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("DISPLAY", display)
            if shutil.which("openbox"):
                wm = subprocess.Popen(
                    ["openbox"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                procs.append(wm)
                if shutil.which("xprop"):
                    _wait_for(_window_manager_running)
            yield display
    finally:
        for proc in reversed(procs):
            _stop(proc)


class Xdo:
    """One ``xdotool -`` process: each command line runs as soon as it is written."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [XDOTOOL, "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )

    def send(self, command: str) -> float:
        """Write ``command``; returns the LSL time read just before."""
        t = local_clock()
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return t

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            _stop(self.proc)


@pytest.fixture
def xdo(x_display: str) -> Iterator[Xdo]:
    injector = Xdo()
    try:
        yield injector
    finally:
        injector.close()


class FocusedWindow:
    """``xev``'s window, holding the input focus; :meth:`keys` is what it received."""

    def __init__(self, name: str) -> None:
        self.proc = subprocess.Popen(
            [XEV, "-event", "keyboard", "-name", name],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.window = _run(XDOTOOL, "search", "--sync", "--name", name).split()[0]
        _run(XDOTOOL, "windowactivate", "--sync", self.window)
        assert _wait_for(lambda: self.has_focus(), timeout=5), "xev's window did not get focus"

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    def has_focus(self) -> bool:
        return _run(XDOTOOL, "getwindowfocus").strip() == self.window

    def keys(self) -> list[tuple[str, str]]:
        """(``KeyPress`` or ``KeyRelease``, keysym name) of each key event the window got."""
        out, kind = [], None
        for line in list(self.lines):
            if line.startswith(("KeyPress", "KeyRelease")):
                kind = line.split()[0]
            elif kind and "keysym" in line:
                out.append((kind, line.split("keysym ")[1].split(", ")[1].split(")")[0]))
                kind = None
        return out

    def close(self) -> None:
        _stop(self.proc)
        self._reader.join(5)


@pytest.fixture
def focused_window(x_display: str) -> Iterator[FocusedWindow]:
    if not XEV:
        pytest.skip("xev is not installed (apt install x11-utils)")
    window = FocusedWindow(f"rl-focus-{os.getpid()}")
    try:
        yield window
    finally:
        window.close()


@pytest.fixture(autouse=True)
def no_reader_left_running() -> Iterator[None]:
    """Every test closes its keyboards: no reader thread outlives it."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name.startswith("keyboard-")]
    assert not alive, f"keyboard reader threads still running: {alive}"


def take(q: queue.Queue, n: int, timeout: float = 2.0) -> list[KeyEvent]:
    """The next ``n`` events, failing if they do not all arrive within ``timeout``."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        try:
            out.append(q.get(timeout=max(0.0, end - time.monotonic())))
        except queue.Empty:
            raise AssertionError(f"got {len(out)} of {n} key events: {out}") from None
    return out


def nothing_more(q: queue.Queue, wait: float = 0.3) -> list[KeyEvent]:
    time.sleep(wait)
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


# ---------------------------------------------------------------------- X11: the keyboard
def test_list_keyboards_names_the_x_keyboards(x_display: str) -> None:
    found = list_keyboards()
    assert all(isinstance(k, KeyboardInfo) for k in found)
    x11 = {k.spec: k for k in found if k.backend == "x11"}
    assert f"x11:{XTEST_KEYBOARD}" in x11, x11
    info = x11[f"x11:{XTEST_KEYBOARD}"]
    assert info.name == XTEST_KEYBOARD
    assert "XTEST" in info.detail and "id" in info.detail
    assert all(k.spec.startswith(f"{k.backend}:") for k in found)


def test_each_press_gives_one_down_and_one_up_with_the_key_name(xdo: Xdo) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    keys = {
        "1": "1", "3": "3", "a": "a", "space": "space", "Return": "return", "Up": "up",
        "Escape": "escape", "BackSpace": "backspace", "KP_End": "1", "KP_Enter": "return",
    }  # fmt: skip
    with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put) as kb:
        assert kb.running
        for xdo_key, name in keys.items():
            xdo.send(f"key {xdo_key}")
            down, up = take(q, 2)
            assert (down.key, down.down, up.key, up.down) == (name, True, name, False)
            assert not down.repeat and not up.repeat
            assert down.device == up.device == XTEST_KEYBOARD
            assert down.timestamp <= up.timestamp
        assert nothing_more(q) == []  # the master device's copies are not delivered


def test_timestamps_follow_xdotool_injections_on_the_lsl_clock(xdo: Xdo) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    errors = []
    with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put) as kb:
        mapping = kb.clock_mapping
        for _ in range(20):
            for command in ("keydown 1", "keyup 1"):
                time.sleep(0.02)
                injected = xdo.send(command)
                (event,) = take(q, 1)
                arrived = local_clock()
                assert event.down == (command == "keydown 1")
                assert event.timestamp <= arrived
                errors.append(event.timestamp - injected)
    err_ms = np.array(errors) * 1e3
    # The server stamps in whole ms and the event is put at the centre of its ms, so a stamp
    # can read up to 0.5 ms before the injection; never more than 1 ms.
    assert err_ms.min() >= -1.0, err_ms
    # xdotool passes a command on within a fraction of a ms; on a loaded machine some take
    # several ms (measured: up to 20 % over 2 ms with 2.5 busy processes per core), which is
    # when the server saw the key, so only the median is held to +2 ms here; the exact
    # check is test_timestamps_lie_within_the_xtest_request.
    assert -1.0 <= np.median(err_ms) <= 2.0, err_ms
    json.dumps(mapping)  # stored with the session's events
    assert mapping["server_is_local"] is True
    assert abs(mapping["server_offset_measured_s"]) < 0.002
    assert mapping["offset_s"] == pytest.approx(stamp_centre_s(), abs=1e-5)
    assert "CLOCK_MONOTONIC" in mapping["device_clock"]


def test_timestamps_lie_within_the_xtest_request(x_display: str) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    xtest = XTestKeys()
    try:
        with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put):
            for i in range(40):
                time.sleep(0.01)
                t0, t1 = xtest.key("3", down=i % 2 == 0)
                (event,) = take(q, 1)
                # The stamp is taken while the server handles the request, within [t0, t1];
                # truncated to the ms and put at the ms's centre: +-0.5 ms around that.
                assert t0 - 0.0006 <= event.timestamp <= t1 + 0.0006, (
                    f"{(event.timestamp - t0) * 1e3:.3f} ms after the request, which took "
                    f"{(t1 - t0) * 1e3:.3f} ms"
                )
    finally:
        xtest.close()


def test_keys_arrive_while_another_client_has_focus(
    xdo: Xdo, focused_window: FocusedWindow
) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put):
        assert focused_window.has_focus()
        xdo.send("key 3")
        down, up = take(q, 2)
    assert (down.key, down.down, up.key, up.down) == ("3", True, "3", False)
    # The keys were ordinary key presses that went to the focused window as well.
    assert _wait_for(lambda: ("KeyPress", "3") in focused_window.keys(), timeout=2)


def test_keys_arrive_when_the_focus_is_taken_away(xdo: Xdo) -> None:
    x11 = ctypes.CDLL("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XSetInputFocus.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_ulong]
    x11.XGetInputFocus.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    x11.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    dpy = x11.XOpenDisplay(None)
    assert dpy
    try:
        # None, RevertToNone, CurrentTime: keys go to no window (openbox may then give the
        # focus to a window of its own, which is no more ours)
        x11.XSetInputFocus(dpy, 0, 0, 0)
        x11.XSync(dpy, 0)
        focus, revert = ctypes.c_ulong(), ctypes.c_int()
        x11.XGetInputFocus(dpy, ctypes.byref(focus), ctypes.byref(revert))
        assert focus.value != 1  # not PointerRoot
        q: queue.Queue[KeyEvent] = queue.Queue()
        with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put):
            xdo.send("key 1")
            assert [(e.key, e.down) for e in take(q, 2)] == [("1", True), ("1", False)]
    finally:
        x11.XSetInputFocus(dpy, 1, 2, 0)  # back to PointerRoot for the other tests
        x11.XSync(dpy, 0)
        x11.XCloseDisplay(dpy)


def test_a_held_key_is_one_press_although_the_server_repeats_it(
    xdo: Xdo, focused_window: FocusedWindow
) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put):
        xdo.send("keydown 3")
        time.sleep(1.5)  # the server's auto-repeat starts after 660 ms, then 25 per second
        xdo.send("keyup 3")
        events = take(q, 2)
        events += nothing_more(q)
    assert [(e.key, e.down, e.repeat) for e in events] == [("3", True, False), ("3", False, False)]
    assert 1.4 < events[1].timestamp - events[0].timestamp < 2.0
    # The focused window did get the auto-repeats: raw events leave them out.
    presses = [k for k in focused_window.keys() if k == ("KeyPress", "3")]
    assert len(presses) > 5, focused_window.keys()


def test_grab_keeps_the_keys_from_the_focused_window(
    xdo: Xdo, focused_window: FocusedWindow
) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    with open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put, grab=True):
        xdo.send("key 1")
        assert [(e.key, e.down) for e in take(q, 2)] == [("1", True), ("1", False)]
        time.sleep(0.3)
    xdo.send("key 2")  # the grab ends with the keyboard
    assert _wait_for(lambda: ("KeyPress", "2") in focused_window.keys(), timeout=2)
    assert ("KeyPress", "1") not in focused_window.keys(), focused_window.keys()


def test_x11_all_reads_every_keyboard_once(xdo: Xdo) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    with open_keyboard("x11:all", q.put) as kb:
        assert kb.info.spec == "x11:all"
        xdo.send("key a")
        events = take(q, 2) + nothing_more(q)
    assert [(e.key, e.down, e.device) for e in events] == [
        ("a", True, XTEST_KEYBOARD),
        ("a", False, XTEST_KEYBOARD),
    ]


def test_device_names_match_regardless_of_case(x_display: str) -> None:
    kb = open_keyboard(f"x11:{XTEST_KEYBOARD.upper()}", lambda e: None)
    assert kb.info.spec == f"x11:{XTEST_KEYBOARD}"


def test_close_is_quick_idempotent_and_ends_delivery(xdo: Xdo) -> None:
    q: queue.Queue[KeyEvent] = queue.Queue()
    kb = open_keyboard(f"x11:{XTEST_KEYBOARD}", q.put)
    kb.close()  # before start: nothing to do
    kb.start()
    xdo.send("key 1")
    take(q, 2)
    t0 = time.monotonic()
    kb.close()
    assert time.monotonic() - t0 < 1.0
    assert not kb.running
    kb.close()
    xdo.send("key 1")
    assert nothing_more(q) == []
    with pytest.raises(RuntimeError, match="closed"):
        kb.start()


def test_an_on_event_error_is_logged_and_reading_goes_on(
    xdo: Xdo, caplog: pytest.LogCaptureFixture
) -> None:
    got: list[KeyEvent] = []

    def on_event(event: KeyEvent) -> None:
        got.append(event)
        if len(got) == 1:
            raise ValueError("a broken consumer")

    with caplog.at_level(logging.ERROR, logger="drivers.keyboard"):
        with open_keyboard(f"x11:{XTEST_KEYBOARD}", on_event):
            xdo.send("key 1")
            assert _wait_for(lambda: len(got) == 2, timeout=2)
    assert "on_event raised" in caplog.text


def test_a_replugged_device_is_followed(x_display: str, caplog: pytest.LogCaptureFixture) -> None:
    if not shutil.which("xinput"):
        pytest.skip("xinput is not installed (apt install xinput)")
    master = f"rltest{os.getpid()}"
    slave = f"{master} XTEST keyboard"  # created with the master, as a real keyboard appears
    _run("xinput", "create-master", master)
    try:
        with caplog.at_level(logging.WARNING, logger="drivers.keyboard_x11"):
            with open_keyboard(f"x11:{slave}", lambda e: None) as kb:
                _run("xinput", "remove-master", f"{master} keyboard")
                assert _wait_for(lambda: "went away" in caplog.text, timeout=3)
                _run("xinput", "create-master", master)
                assert _wait_for(lambda: "(re)appeared" in caplog.text, timeout=3)
                assert kb.running
    finally:
        subprocess.run(["xinput", "remove-master", f"{master} keyboard"], capture_output=True)


def test_a_vanished_x_server_stops_the_reader_not_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not XVFB:
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    xvfb, display = _start_xvfb()
    try:
        monkeypatch.setenv("DISPLAY", display)
        kb = open_keyboard(f"x11:{XTEST_KEYBOARD}", lambda e: None).start()
        _stop(xvfb)
        assert _wait_for(lambda: not kb.running, timeout=3)
        assert "lost the connection" in (kb.error or "")
        kb.close()
    finally:
        _stop(xvfb)


# ---------------------------------------------------------------------- bad specs
@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("", "not a keyboard spec"),
        ("keyboard", "not a keyboard spec"),
        ("x11:", "not a keyboard spec"),
        ("usb:1", "x11:<device name>"),
        ("evdev:/dev/input/event999", "no such device"),
        ("evdev:/dev/null", "cannot query"),
    ],
)
def test_bad_specs_are_refused_with_one_clear_line(spec: str, words: str) -> None:
    with pytest.raises(RecallLabError) as err:
        open_keyboard(spec, lambda e: None)
    assert words in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_x_device_names_the_ones_there(x_display: str) -> None:
    with pytest.raises(RecallLabError) as err:
        open_keyboard("x11:No Such Keyboard", lambda e: None)
    msg = str(err.value)
    assert "No Such Keyboard" in msg and f"'{XTEST_KEYBOARD}'" in msg and "xinput" in msg
    assert "\n" not in msg


def test_x11_all_cannot_be_grabbed(x_display: str) -> None:
    with pytest.raises(RecallLabError, match="cannot be grabbed"):
        open_keyboard("x11:all", lambda e: None, grab=True)


def test_no_display_is_refused_and_listing_does_not_raise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(RecallLabError, match="DISPLAY is not set"):
        open_keyboard(f"x11:{XTEST_KEYBOARD}", lambda e: None)
    assert [k for k in list_keyboards() if k.backend == "x11"] == []
    monkeypatch.setenv("DISPLAY", ":4242")  # no server there
    with pytest.raises(RecallLabError, match="cannot open X display ':4242'"):
        open_keyboard(f"x11:{XTEST_KEYBOARD}", lambda e: None)
    assert [k for k in list_keyboards() if k.backend == "x11"] == []


# ---------------------------------------------------------------------- pure helpers
def test_key_names_follow_the_protocols_spelling() -> None:
    assert key_name("Return") == "return"
    assert key_name("space") == "space"
    assert key_name("BackSpace") == "backspace"
    assert key_name("1", "exclam") == "1"
    assert key_name("KP_End", "KP_1") == "1"  # keypad digits by their digit, as Qt names them
    assert key_name("KP_Enter", "KP_Enter") == "return"
    assert key_name("KP_Add", "KP_Add") == "kp_add"
    assert key_name(None) is None


def test_the_stamp_centre_follows_the_clock_the_x_server_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coarse = getattr(time, "CLOCK_MONOTONIC_COARSE", 6)
    real = time.clock_getres

    def res(tick: float):
        return lambda clock: tick if clock == coarse else real(clock)

    monkeypatch.setattr(time, "clock_getres", res(0.004))  # HZ=250: CLOCK_MONOTONIC
    assert stamp_centre_s() == pytest.approx(0.0005)
    monkeypatch.setattr(time, "clock_getres", res(0.001))  # HZ=1000: the coarse clock
    assert stamp_centre_s() == pytest.approx(0.001)


def test_x11_time_unwraps_centres_and_refuses_implausible_stamps() -> None:
    wrap = 2**32
    # plain: 5 ms before the read
    assert x11_time(100_000, 100.005) == pytest.approx(100.0)
    # with the centre of the ms
    assert x11_time(100_000, 100.005, offset_s=0.0005) == pytest.approx(100.0005)
    # the 32-bit stamp wrapped: LSL time 5,000,000 s is 5e9 ms, stamp is that mod 2**32
    t = 5_000_000.0
    assert x11_time(int(t * 1000) % wrap, t + 0.003) == pytest.approx(t)
    # never later than when it was read (stamped in the same ms as the read)
    assert x11_time(100_000, 100.0002, offset_s=0.0005) == pytest.approx(100.0002)
    # more than 2 s old, or in the future: the read time
    assert x11_time(100_000, 103.0) == 103.0
    assert x11_time(100_500, 100.0) == 100.0
    assert x11_time(0, 42.0) == 42.0


# ---------------------------------------------------------------------- evdev
def pack(sec: int, usec: int, type_: int, code: int, value: int) -> bytes:
    return INPUT_EVENT.pack(sec, usec, type_, code, value)


def syn(sec: int = 0, usec: int = 0) -> bytes:
    return pack(sec, usec, EV_SYN, SYN_REPORT, 0)


KEY_1, KEY_A, KEY_ENTER, KEY_SPACE, KEY_UP, KEY_KP1, KEY_KPENTER = 2, 30, 28, 57, 103, 79, 96
BTN_LEFT, EV_MSC, MSC_SCAN = 0x110, 4, 4


def test_evdev_struct_and_ioctl_numbers_are_the_kernels() -> None:
    if struct.calcsize("@l") != 8:
        pytest.skip("the sizes below are those of a 64-bit build")
    assert INPUT_EVENT.size == 24
    # from linux/input.h as compiled on x86_64
    assert EVIOCGRAB == 0x40044590
    assert EVIOCSCLOCKID == 0x400445A0
    assert EVIOCGNAME(256) == 0x81004506
    assert EVIOCGBIT(EV_KEY, 96) == 0x80604521
    assert EVIOCGKEY(96) == 0x80604518


def test_evdev_decoding_gives_down_repeat_up_on_the_given_clock() -> None:
    data = b"".join(
        [
            pack(100, 250_000, EV_MSC, MSC_SCAN, 0x70004),  # scan code: not a key event
            pack(100, 250_000, EV_KEY, KEY_1, 1),
            syn(100, 250_000),
            pack(100, 750_000, EV_KEY, KEY_1, 2),  # the kernel's auto-repeat
            syn(100, 750_000),
            pack(101, 5, EV_KEY, KEY_1, 0),
            syn(101, 5),
        ]
    )
    events, dropping = decode_input_events(data, "kbd", offset_s=0.5)
    assert not dropping
    assert [(e.key, e.down, e.repeat, e.device) for e in events] == [
        ("1", True, False, "kbd"),
        ("1", True, True, "kbd"),
        ("1", False, False, "kbd"),
    ]
    assert [e.timestamp for e in events] == pytest.approx([100.75, 101.25, 101.500005])


def test_evdev_key_names_match_the_x11_backend() -> None:
    codes = [KEY_A, KEY_ENTER, KEY_SPACE, KEY_UP, KEY_KP1, KEY_KPENTER, 11, 1, 14, 240]
    data = b"".join(pack(1, 0, EV_KEY, c, 1) for c in codes)
    events, _ = decode_input_events(data, "kbd")
    assert [e.key for e in events] == [
        "a", "return", "space", "up", "1", "return", "0", "escape", "backspace", "key240",
    ]  # fmt: skip


def test_evdev_decoding_leaves_out_buttons_and_partial_records() -> None:
    data = pack(1, 0, EV_KEY, BTN_LEFT, 1) + pack(1, 0, EV_KEY, KEY_A, 1) + b"\x01\x02"
    events, _ = decode_input_events(data, "kbd")
    assert [e.key for e in events] == ["a"]


def test_evdev_events_after_syn_dropped_are_discarded_up_to_the_next_report() -> None:
    first = b"".join(
        [
            pack(1, 0, EV_KEY, KEY_A, 1),
            syn(1, 0),
            pack(2, 0, EV_SYN, SYN_DROPPED, 0),
            pack(2, 0, EV_KEY, KEY_A, 0),  # incomplete: discarded
        ]
    )
    events, dropping = decode_input_events(first, "kbd")
    assert [(e.key, e.down) for e in events] == [("a", True)] and dropping
    second = pack(2, 0, EV_KEY, KEY_1, 1) + syn(2, 0) + pack(3, 0, EV_KEY, KEY_1, 0)
    events, dropping = decode_input_events(second, "kbd", dropping=True)
    assert [(e.key, e.down) for e in events] == [("1", False)] and not dropping


def test_evdev_listing_and_open_errors_here() -> None:
    found = list_evdev_keyboards()  # no /dev/input on this machine: an empty list
    assert all(k.spec.startswith("evdev:") for k in found)


def test_evdev_reader_thread_delivers_on_the_lsl_clock(tmp_path: Path) -> None:
    """The reader loop over a FIFO; the FIFO refuses EVIOCSCLOCKID, so the events are on
    CLOCK_REALTIME and mapped with the measured UNIX -> LSL offset."""
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # a writer before the reader opens
    try:
        q: queue.Queue[KeyEvent] = queue.Queue()
        info = KeyboardInfo(f"evdev:{fifo}", "fifo keyboard", "evdev", "test")
        with EvdevKeyboard(info, q.put, path=str(fifo)) as kb:
            mapping = kb.clock_mapping
            assert "CLOCK_REALTIME" in mapping["device_clock"]
            assert "EVIOCSCLOCKID refused" in mapping["method"]
            now = time.time()
            sec, usec = int(now), int((now % 1) * 1e6)
            t_lsl = local_clock()
            os.write(
                writer,
                pack(sec, usec, EV_KEY, KEY_SPACE, 1) + syn(sec, usec)
                + pack(sec, usec, EV_KEY, KEY_SPACE, 0) + syn(sec, usec),
            )  # fmt: skip
            down, up = take(q, 2)
        assert (down.key, down.down, up.down, down.device) == (
            "space",
            True,
            False,
            "fifo keyboard",
        )
        assert abs(down.timestamp - t_lsl) < 0.005
        assert not kb.running
    finally:
        os.close(writer)


def test_evdev_grab_failure_is_raised_by_start(tmp_path: Path) -> None:
    fifo = tmp_path / "event0"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    try:
        info = KeyboardInfo(f"evdev:{fifo}", "fifo keyboard", "evdev", "test")
        kb = EvdevKeyboard(info, lambda e: None, path=str(fifo), grab=True)
        with pytest.raises(RecallLabError, match="cannot grab it"):
            kb.start()
        assert not kb.running
    finally:
        os.close(writer)


# ---------------------------------------------------------------------- the benchmark
@pytest.mark.timeout(120)
def test_bench_keyboard_runs_and_writes_its_figures(tmp_path: Path) -> None:
    if not XVFB:
        pytest.skip("Xvfb is not installed (apt install xvfb)")
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "bench_keyboard.py"), "--presses", "4",
         "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=100, cwd=repo,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "keyboard.json").read_text())
    fig = doc["sections"]["x11"]["figures"]
    assert fig["events"] == 8 and fig["wrong_events"] == 0
    assert fig["in_request_fraction"] == 1.0
    assert [tuple(e) for e in fig["held_key_events"]] == [("3", True, False), ("3", False, False)]
    assert (tmp_path / "keyboard.md").read_text().startswith("## keyboard")
