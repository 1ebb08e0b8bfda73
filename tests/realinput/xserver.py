"""An X server of our own (Xvfb) with a window manager (openbox) on it.

Without a window manager nothing gives a window focus when it is clicked, so key presses
would go wherever the app last asked, not where a person's click sent them. openbox runs with
``openbox-rc.xml`` beside this file: click-to-focus, focus on new windows, no key bindings.
"""

from __future__ import annotations

import ctypes.util
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OPENBOX_RC = HERE / "openbox-rc.xml"
SCREEN = (1600, 1000)
TOOLS = ("Xvfb", "openbox", "xdotool", "xprop", "xwininfo")


_PRCTL = ctypes.CDLL(None).prctl  # resolved here: a forked child should do next to nothing
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGTERM if the test process dies (a pytest timeout ends
    it with ``os._exit``), so no X server or app outlives the run."""
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def missing_tools() -> list[str]:
    """What this rig needs and this machine lacks (executables and libXtst)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if ctypes.util.find_library("Xtst") is None:
        missing.append("libXtst (libxtst6)")
    return missing


class XServer:
    """Xvfb on a free display number, with openbox managing its windows.

    Use as a context manager, or call :meth:`start` and :meth:`stop`. :attr:`env` is the
    environment for programs that should run on it.
    """

    def __init__(self, size: tuple[int, int] = SCREEN) -> None:
        self.size = size
        self.display = ""
        self.xvfb: subprocess.Popen | None = None
        self.wm: subprocess.Popen | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="recall-lab-x-"))

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["DISPLAY"] = self.display
        env.pop("WAYLAND_DISPLAY", None)
        # openbox and Qt keep their caches and runtime files here, not in the user's home.
        env["XDG_CONFIG_HOME"] = str(self._dir / "config")
        env["XDG_CACHE_HOME"] = str(self._dir / "cache")
        env["XDG_RUNTIME_DIR"] = str(self._dir / "runtime")
        return env

    def __enter__(self) -> XServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> None:
        (self._dir / "runtime").mkdir(mode=0o700, exist_ok=True)
        try:
            self._start_xvfb(timeout)
            self._start_wm(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_xvfb(self, timeout: float) -> None:
        read_fd, write_fd = os.pipe()
        w, h = self.size
        try:
            with open(self._dir / "xvfb.log", "wb") as log:
                self.xvfb = subprocess.Popen(
                    ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{w}x{h}x24",
                     "-nolisten", "tcp"],
                    pass_fds=(write_fd,),
                    preexec_fn=die_with_parent,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )  # fmt: skip
        finally:
            os.close(write_fd)
        try:
            # Xvfb writes its display number once it accepts connections.
            text = b""
            end = time.monotonic() + timeout
            while not text.endswith(b"\n"):
                left = end - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    raise RuntimeError(f"Xvfb did not start within {timeout:g} s{self._log()}")
                chunk = os.read(read_fd, 64)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited at start{self._log()}")
                text += chunk
        finally:
            os.close(read_fd)
        self.display = f":{int(text)}"

    def _start_wm(self, timeout: float) -> None:
        env = self.env
        with open(self._dir / "openbox.log", "wb") as log:
            self.wm = subprocess.Popen(
                ["openbox", "--config-file", str(OPENBOX_RC), "--sm-disable"],
                env=env,
                preexec_fn=die_with_parent,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        # The window manager is up once it has set _NET_SUPPORTING_WM_CHECK on the root window.
        end = time.monotonic() + timeout
        while True:
            if self.wm.poll() is not None:
                raise RuntimeError(f"openbox exited with {self.wm.returncode}{self._log()}")
            out = subprocess.run(
                ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"],
                env=env,
                capture_output=True,
                text=True,
            ).stdout
            if "window id #" in out:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"openbox did not start within {timeout:g} s{self._log()}")
            time.sleep(0.05)

    def _log(self) -> str:
        parts = []
        for name in ("xvfb.log", "openbox.log"):
            p = self._dir / name
            if p.is_file() and p.stat().st_size:
                parts.append(f"\n--- {name}:\n" + p.read_text(errors="replace")[-2000:])
        return "".join(parts)

    def stop(self) -> None:
        """Stop openbox, then Xvfb; each gets 5 s to exit before it is killed."""
        for proc in (self.wm, self.xvfb):
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.wm = self.xvfb = None
        shutil.rmtree(self._dir, ignore_errors=True)
