"""The test's side of the rig: a person at the keyboard and mouse of the app's X server.

:class:`RealApp` starts ``recall-lab app`` (through :mod:`.child`) on an :class:`XServer` and
acts only as a person can: it moves the pointer and clicks with xdotool, and presses keys
through XTEST (libXtst, called here so the LSL time of each injection is read right before
it). Where to click comes from the app's inspector (where a named button is on the screen), the
way a person's eyes find it; focus moves only because the window manager and Qt react to the
clicks.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from drivers.xtest import XTestKeys

from .xserver import XServer, die_with_parent

CHILD = Path(__file__).resolve().parent / "child.py"
CONSOLE = "experimenter console"
PARTICIPANT = "participant"


class Press(NamedTuple):
    """One key press as injected, LSL times.

    ``down``/``up`` are read just before the key went down/up; ``down_taken``/``up_taken``
    once the X server had processed that event. The server stamps the event in between, in
    whole milliseconds (so up to 1 ms before ``down``); a gap between the two times is the X
    server's own delay (a loaded machine), not the app's.
    """

    key: str
    down: float
    up: float
    down_taken: float
    up_taken: float

    def check(self, label: str, t: float, early: float = 0.0015, late: float = 0.005) -> str:
        """``""`` if ``t`` (a file's ``key_down``/``key_up`` time) is on time, else why not."""
        sent, taken = (
            (self.down, self.down_taken) if label == "key_down" else (self.up, self.up_taken)
        )
        error = t - sent
        if -early <= error <= max(late, taken - sent + 0.001):
            return ""
        return (
            f"{label} {self.key!r}: the file says {error * 1000:+.2f} ms from the injection "
            f"(the X server took it {(taken - sent) * 1000:.2f} ms after it was sent)"
        )


class RigError(AssertionError):
    """The app did not do what a person waited for, or the rig could not act."""


class RealApp:
    """``recall-lab app`` on ``x``, and a person in front of it.

    Parameters
    ----------
    x
        The X server (with its window manager) the app runs on.
    workdir
        Where the settings file, the session folder (``sessions/``) and the app's logs go.
    participant, protocol, time_scale, source
        ``recall-lab app`` options; ``out_dir`` defaults to ``workdir / "sessions"``.
    extra_args
        More ``recall-lab app`` options.
    """

    def __init__(
        self,
        x: XServer,
        workdir: Path,
        *,
        participant: str | None = "P042",
        protocol: str = "demo",
        time_scale: float = 0.2,
        source: str = "synthetic",
        out_dir: Path | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.x = x
        self.extra_env = dict(env or {})  # e.g. HOME with an ~/.asoundrc for the sound device
        self.workdir = Path(workdir)
        self.out_dir = Path(out_dir) if out_dir is not None else self.workdir / "sessions"
        self.args = [
            "--source", source,
            *(("--participant", participant) if participant is not None else ()),
            "--protocol", protocol,
            "--time-scale", str(time_scale),
            "--out-dir", str(self.out_dir),
            "--settings", str(self.workdir / "settings.ini"),
            *extra_args,
        ]  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.stdout_log = self.workdir / "app-stdout.log"
        self.stderr_log = self.workdir / "app-stderr.log"
        self._replies: queue.Queue[dict] = queue.Queue()
        self._next_id = 0
        self._keys: XTestKeys | None = None
        self._reply_file = None
        self._t0 = time.monotonic()
        self.journal: list[str] = []  # what the person did and when (printed on failure)

    def note(self, what: str) -> None:
        self.journal.append(f"{time.monotonic() - self._t0:7.2f} s  {what}")

    # ------------------------------------------------------------------ life
    def __enter__(self) -> RealApp:
        try:
            self.start()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)

    def start(self, timeout: float = 60.0) -> None:
        """Start the app and wait until both its windows are on the screen."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        read_fd, write_fd = os.pipe()
        env = self.x.env
        env.update(self.extra_env)
        env["RECALL_LAB_RIG_FD"] = str(write_fd)
        env["PYTHONUNBUFFERED"] = "1"
        try:
            with open(self.stdout_log, "wb") as out, open(self.stderr_log, "wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, str(CHILD), *self.args],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd=self.workdir,
                    pass_fds=(write_fd,),
                    preexec_fn=die_with_parent,
                    text=True,
                )
        finally:
            os.close(write_fd)
        self._reply_file = os.fdopen(read_fd, "r", encoding="utf-8")
        threading.Thread(target=self._read_replies, name="rig-replies", daemon=True).start()
        self._keys = XTestKeys(self.x.display)
        self._t0 = time.monotonic()
        self.note(f"started recall-lab app {' '.join(self.args)}")
        self.wait_until(
            lambda: self._both_windows_mapped(), timeout=timeout, what="both windows on screen"
        )
        self.note("both windows on screen")

    def _read_replies(self) -> None:
        for line in self._reply_file:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                self._replies.put({"id": None, "event": "garbage", "line": line})
        self._replies.put({"id": None, "event": "eof"})

    def _both_windows_mapped(self) -> bool:
        wins = self.windows()
        console = [w for w in wins if CONSOLE in w["title"].lower()]
        participant = [w for w in wins if PARTICIPANT in w["title"].lower()]
        if not (console and participant):
            return False
        # Mapped on the X server and managed by the window manager (it lists its clients).
        clients = self._client_list()
        return console[0]["xid"] in clients and participant[0]["xid"] in clients

    def _client_list(self) -> list[int]:
        out = self._xrun("xprop", "-root", "_NET_CLIENT_LIST_STACKING").stdout
        if "#" not in out:
            return []
        return [int(v.strip(), 16) for v in out.split("#", 1)[1].split(",") if v.strip()]

    def close(self, *, failed: bool = False) -> None:
        """Quit the app (killing it if it does not leave); on failure, print its stderr tail."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    if proc.stdin is not None:
                        proc.stdin.write(json.dumps({"id": -1, "cmd": "quit"}) + "\n")
                        proc.stdin.close()
                except OSError:
                    pass
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    failed = True
                    print("recall-lab app did not quit within 20 s: killed", file=sys.stderr)
                    proc.kill()
                    proc.wait(10)
            elif proc.stdin is not None:
                proc.stdin.close()
            if failed or proc.returncode not in (0, None):
                print("--- what the person did:", *self.journal, sep="\n", file=sys.stderr)
                print(self.log_tail(), file=sys.stderr)
        if self._keys is not None:
            self._keys.close()
            self._keys = None
        if self._reply_file is not None:
            self._reply_file.close()
            self._reply_file = None

    def log_tail(self, chars: int = 4000) -> str:
        parts = []
        for p in (self.stdout_log, self.stderr_log):
            if p.is_file():
                text = p.read_text(errors="replace")[-chars:]
                parts.append(f"--- {p.name} (tail):\n{text}")
        return "\n".join(parts)

    # ------------------------------------------------------------------ eyes (inspector)
    def request(self, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
        """Ask the app's inspector; the answer is computed on its GUI thread."""
        if self.proc is None or self.proc.stdin is None:
            raise RigError("the app is not running")
        if self.proc.poll() is not None:
            raise RigError(f"the app exited with {self.proc.returncode}\n{self.log_tail()}")
        self._next_id += 1
        rid = self._next_id
        self.proc.stdin.write(json.dumps({"id": rid, "cmd": cmd, "args": args}) + "\n")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            try:
                msg = self._replies.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                raise RigError(
                    f"the app did not answer {cmd!r} within {timeout:g} s (GUI thread busy?)"
                ) from None
            if msg.get("event") == "eof":
                self._replies.put(msg)
                raise RigError(f"the app closed its inspector pipe\n{self.log_tail()}")
            if msg.get("id") != rid:
                continue  # an event, or a late answer to a request that timed out
            if not msg["ok"]:
                raise RigError(f"{cmd}: {msg['error']}\n{msg.get('traceback', '')}")
            return msg["result"]

    def find(self, name: str, window: str | None = None) -> dict | None:
        """The widget a person calls ``name`` (accessible name, or its text), or ``None``."""
        return self.request("find", name=name, window=window)

    def text(self, name: str, window: str | None = None) -> str | None:
        return self.request("text", name=name, window=window)

    def windows(self) -> list[dict]:
        return self.request("windows")

    def window(self, title: str) -> dict:
        """The visible top-level window whose title contains ``title`` (case-insensitive)."""
        for w in self.windows():
            if title.lower() in w["title"].lower():
                return w
        raise RigError(f"no window titled *{title}*; windows: {self.windows()}")

    def focus(self) -> dict:
        return self.request("focus")

    def state(self) -> dict:
        return self.request("state")

    def wait_until(
        self,
        fn: Callable[[], Any],
        timeout: float = 10.0,
        *,
        what: str = "",
        interval: float = 0.05,
    ) -> Any:
        """Poll ``fn`` until it returns something true; return that."""
        end = time.monotonic() + timeout
        last: Any = None
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() > end:
                raise RigError(
                    f"waited {timeout:g} s for {what or fn!r}; last: {last!r}\n"
                    f"app state: {self._state_or_error()}"
                )
            time.sleep(interval)

    def _state_or_error(self) -> str:
        try:
            return json.dumps(self.state())
        except RigError as exc:
            return f"(no state: {str(exc)[:2000]})"

    def wait_phase(self, kind: str, timeout: float = 20.0) -> dict:
        """Wait until the protocol runs a phase of ``kind`` (``recall``, ``description``...)."""

        def at() -> dict | None:
            e = self.state()["engine"]
            return e if e is not None and e["kind"] == kind else None

        state = self.wait_until(at, timeout, what=f"the protocol's {kind} phase")
        self.note(f"phase {state['phase_id']} ({kind})")
        return state

    # ------------------------------------------------------------------ hands (X server only)
    def _xrun(self, *cmd: str) -> subprocess.CompletedProcess:
        res = subprocess.run(cmd, env=self.x.env, capture_output=True, text=True, timeout=20)
        if res.returncode != 0:
            raise RigError(f"{' '.join(cmd)} failed: {res.stderr.strip()}")
        return res

    def _mouse(self) -> dict[str, int]:
        out = self._xrun("xdotool", "getmouselocation", "--shell").stdout
        return {k: int(v) for k, v in (ln.split("=", 1) for ln in out.split() if "=" in ln)}

    def pointer(self) -> tuple[int, int]:
        """Where the pointer is on the screen."""
        m = self._mouse()
        return m["X"], m["Y"]

    def pointer_window(self) -> int:
        """The window under the pointer now (X window id: the window manager's frame)."""
        return self._mouse().get("WINDOW", 0)

    def under_pointer(self, xid: int) -> bool:
        """Whether top-level window ``xid`` is the one under the pointer (not covered there)."""
        under = self.pointer_window()
        if under == xid:
            return True
        if not under:
            return False
        # The pointer is over the frame the window manager put around a client window.
        tree = self._xrun("xwininfo", "-tree", "-id", str(under)).stdout
        return f"{xid:#x} " in tree or tree.rstrip().endswith(f"{xid:#x}")

    def x_focus(self) -> int:
        """The X window that has the keyboard focus (where the X server sends key presses)."""
        return int(self._xrun("xdotool", "getwindowfocus", "-f").stdout.strip() or 0)

    def move_to(self, x: int, y: int) -> None:
        # `mousemove --sync` waits for the pointer to move: never ask it to stay put.
        if self.pointer() != (x, y):
            self._xrun("xdotool", "mousemove", "--sync", str(x), str(y))

    def click_at(self, x: int, y: int, *, expect_window: int | None = None) -> None:
        """Move the pointer to ``(x, y)`` and click the left button there.

        With ``expect_window``, first check that this top-level window is the one under the
        pointer (a person sees whether another window covers the spot).
        """
        self.move_to(x, y)
        if expect_window is not None and not self.under_pointer(expect_window):
            raise RigError(
                f"({x}, {y}) is covered: window {self.pointer_window():#x} is under the "
                f"pointer, not {expect_window:#x}; windows: {self.windows()}"
            )
        self._xrun("xdotool", "click", "1")
        self.note(f"clicked at ({x}, {y})")

    def click(self, name: str, *, window: str | None = None, timeout: float = 10.0) -> dict:
        """Click the middle of the widget called ``name`` once it is shown, enabled and still.

        A person waits for the screen to settle: the widget must be where it was a moment
        ago, and be the one under the pointer, before the button goes down (a label that
        changes height moves the buttons below it). Returns what the inspector said about the
        widget just before the click.
        """
        end = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < end:
            w = self.find(name, window)
            last = w
            if w is None or not (w["visible"] and w["enabled"]):
                time.sleep(0.05)
                continue
            if w.get("scroll"):
                self._scroll_towards(w)
                continue
            time.sleep(0.1)
            if self.find(name, window) != w:
                continue  # still moving
            x, y, width, height = w["rect"]
            cx, cy = x + width // 2, y + height // 2
            self.move_to(cx, cy)
            if not self.request("hit", name=name, x=cx, y=cy, window=window):
                continue
            self.note(f"click {name!r} ({w['class']} in {w['window']!r})")
            self.click_at(cx, cy, expect_window=w["window_xid"])
            return w
        raise RigError(
            f"{name!r} was not shown, enabled and still within {timeout:g} s; last: {last}\n"
            f"app state: {self._state_or_error()}"
        )

    def _scroll_towards(self, w: dict) -> None:
        """Page the scroll area that holds ``w`` towards it, clicking its scroll bar's trough
        below (or above) the handle, as a person brings a control below the fold into view."""
        bar = w.get("scrollbar")
        if bar is None:
            raise RigError(f"{w['text']!r} is out of view and there is no scroll bar: {w}")
        x, y, width, height = bar
        arrow = width + 4  # the arrow buttons are about as tall as the bar is wide
        ty = y + height - arrow - 2 if w["scroll"] > 0 else y + arrow + 2
        self.click_at(x + width // 2, ty)
        self.note(f"paged {'down' if w['scroll'] > 0 else 'up'} towards {w['text']!r}")
        time.sleep(0.05)

    def double_click_item(self, name: str, text: str, timeout: float = 10.0) -> None:
        """Double-click the item ``text`` in the list called ``name`` (once it is listed)."""
        end = time.monotonic() + timeout
        rect = None
        while time.monotonic() < end:
            rect = self.request("item", name=name, text=text)
            if rect is not None:
                break
            time.sleep(0.1)
        if rect is None:
            raise RigError(f"{text!r} is not in the list {name!r}: {self.text(name)!r}")
        time.sleep(0.1)  # the scroll settles
        rect = self.request("item", name=name, text=text)
        x, y = rect[0] + min(rect[2] // 2, 40), rect[1] + rect[3] // 2
        self.move_to(x, y)
        self._xrun("xdotool", "click", "--repeat", "2", "--delay", "80", "1")
        self.note(f"double-clicked {text!r} in {name!r} at ({x}, {y})")

    def click_window(self, title: str) -> None:
        """Click an empty spot inside the window titled ``title`` (focuses it, as a person does).

        The spot is one where no control is (the inspector says what is there), so the click
        moves focus without pressing anything.
        """
        win = self.window(title)
        gx, gy, gw, gh = win["geometry"]
        for fy in (0.02, 0.5, 0.98, 0.25, 0.75):
            for fx in (0.5, 0.02, 0.98, 0.25, 0.75):
                x, y = gx + int(gw * fx), gy + int(gh * fy)
                what = self.request("widget_at", x=x, y=y)
                if what is None or what["window_xid"] != win["xid"]:
                    continue
                if not what["passive"]:
                    continue  # a control: a person clicks beside it
                self.move_to(x, y)
                if not self.under_pointer(win["xid"]):
                    continue  # covered by another window here
                self._xrun("xdotool", "click", "1")
                self.note(f"clicked {title!r} window at ({x}, {y}) on {what['class']}")
                # Keys go where the X server's focus is: wait until the window manager moved
                # it there and the app saw it, as a person waits for the window to light up.
                self.wait_until(
                    lambda: (
                        self.x_focus() == win["xid"]
                        and title.lower() in (self.focus()["active_window"] or "").lower()
                    ),
                    5,
                    what=f"focus on the {title!r} window",
                )
                return
        raise RigError(f"found no free spot to click in {title!r}: {win}")

    def press(self, key: str, hold: float = 0.1, after: float = 0.05) -> Press:
        """Press ``key`` (an X keysym name: ``1``, ``space``), hold it, release it.

        ``after``: seconds before this returns, the least time a finger needs to come back up
        for the next press. (A release and a press of one key in the same millisecond is what
        X11's auto-repeat looks like, and Qt reads it as such.)

        Returns the LSL times read just before the key went down and just before it went up,
        and when the X server had taken each (see :class:`Press`). The key goes wherever the X
        server sends it: the window that has focus.
        """
        assert self._keys is not None
        code = self._keys.keycode(key)
        down, down_taken = self._keys.key(code, True)
        try:
            time.sleep(hold)
        finally:  # never leave a key held down on the X server for the next test
            up, up_taken = self._keys.key(code, False)
        self.note(f"pressed {key!r} for {up - down:.3f} s")
        time.sleep(after)
        return Press(key, down, up, down_taken, up_taken)

    def key_down(self, key: str) -> float:
        """Put ``key`` down (and keep it down); returns the LSL time just before."""
        assert self._keys is not None
        t, _ = self._keys.key(self._keys.keycode(key), True)
        self.note(f"key {key!r} down")
        return t

    def key_up(self, key: str) -> float:
        """Let ``key`` come back up; returns the LSL time just before."""
        assert self._keys is not None
        t, _ = self._keys.key(self._keys.keycode(key), False)
        self.note(f"key {key!r} up")
        return t

    def close_window(self, title: str) -> None:
        """Click the close button on the title bar of the window titled ``title``.

        openbox draws the title bar above the client area with the close button at its right
        end (the default title layout, ``NLIMC``).
        """
        win = self.window(title)
        fx, fy, fw, _ = win["frame"]
        gy = win["geometry"][1]
        bar = gy - fy
        if bar < 8:
            raise RigError(f"{title!r} has no title bar to click: {win}")
        x, y = fx + fw - max(6, bar // 2) - 2, fy + bar // 2
        self.move_to(x, y)
        self._xrun("xdotool", "click", "1")
        self.note(f"clicked the close button of {title!r} at ({x}, {y})")

    def drag(self, points: list[tuple[int, int]], step_s: float = 0.02) -> None:
        """Press the left button at the first point, move through the others, release."""
        self.move_to(*points[0])
        self._xrun("xdotool", "mousedown", "1")
        try:
            for x, y in points[1:]:
                time.sleep(step_s)
                self._xrun("xdotool", "mousemove", str(x), str(y))
        finally:
            self._xrun("xdotool", "mouseup", "1")
        self.note(f"dragged through {len(points)} points")

    def settle(self, seconds: float = 0.3) -> None:
        """Give the app ``seconds`` to handle what the X server delivered, then a round trip."""
        time.sleep(seconds)
        self.request("ping")

    def type_text(self, text: str, delay_ms: int = 20) -> None:
        """Type ``text`` on the keyboard (xdotool, through XTEST) into the focused window."""
        self._xrun("xdotool", "type", "--delay", str(delay_ms), "--", text)
        self.note(f"typed {text!r}")

    # ------------------------------------------------------------------ a person's routines
    def connected(self, timeout: float = 30.0) -> None:
        """Wait until the source is connected (the console's Record button becomes usable)."""
        self.wait_until(lambda: self.state()["connected"], timeout, what="source connected")

    def answer(self, button: str, timeout: float = 5.0) -> bool:
        """Click ``button`` (``Yes``, ``No``, ``OK``) in the dialog in front, if one appears."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            modal = self.state()["modal"]
            if modal is not None:
                self.click(button, window=modal["title"])
                return True
            time.sleep(0.05)
        return False

    def stop_recording_and_wait(self, timeout: float = 30.0, *, confirm: str = "Yes") -> Path:
        """Click Stop, answer a confirmation if one is asked, wait until the file is closed."""
        self.click("Stop")
        end = time.monotonic() + timeout

        def closed_or_asked() -> str | None:
            st = self.state()
            if st["modal"] is not None:
                return "asked"
            if not st["recording"] and st["last_file"] and st["file_label"].endswith("(closed)"):
                return "closed"
            return None

        how = self.wait_until(closed_or_asked, timeout, what="the file closed")
        self.note(f"after Stop: {how}")
        if how == "asked":
            self.answer(confirm)
            self.wait_until(
                lambda: closed_or_asked() == "closed",
                max(1.0, end - time.monotonic()),
                what="the file closed after confirming",
            )
        path = Path(self.state()["last_file"])
        self.note(f"file closed: {path.name}")
        return path
