"""``recall-lab app``: the experimenter console and the participant display."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from data_schema.errors import RecallLabError

_PROBE = "from PyQt6.QtWidgets import QApplication; QApplication(['recall-lab'])"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="the experimenter console and participant display (GUI)",
        description="Open the experimenter console (source, live scope, session control, "
        "event log, offline stages) and the participant display.",
    )
    p.add_argument(
        "--source",
        default=None,
        help="source to connect at start: synthetic (default) | brainflow:<board>[?k=v] | "
        "lsl:<name> | replay:<file>",
    )
    p.add_argument("--no-connect", action="store_true", help="do not connect a source at start")
    p.add_argument("--protocol", default=None, help="protocol file or built-in name (demo)")
    p.add_argument("--participant", default=None, help="pseudonym code, never a name")
    p.add_argument(
        "--reconstructions",
        type=Path,
        default=None,
        metavar="SESSION",
        help="for a protocol with a preference phase: the session whose `recall-lab generate "
        "--control` run made the reconstructions the participant judges",
    )
    p.add_argument("--out-dir", type=Path, default=None, help="folder for session files")
    p.add_argument(
        "--time-scale", type=float, default=None, help="multiply phase durations (e.g. 0.2)"
    )
    p.add_argument("--screen", type=int, default=None, help="screen for the participant display")
    p.add_argument(
        "--fullscreen", action="store_true", help="participant display full screen on --screen"
    )
    p.add_argument(
        "--participant-keyboard",
        default=None,
        metavar="SPEC",
        help="where the participant's keys come from: qt (the app's windows, any focus; "
        "default) | x11:<device name> | evdev:/dev/input/eventN (read directly, focus or not; "
        "`recall-lab boards --keyboards` lists them)",
    )
    p.add_argument(
        "--camera",
        default=None,
        metavar="SPEC",
        help="camera offered for recording the participant's face: none | /dev/videoN | N | "
        "file:VIDEO[?loop=true] (kept in the settings; recorded only with the participant's "
        "consent, ticked in the console for each session; docs/capture.md)",
    )
    p.add_argument(
        "--microphone",
        default=None,
        metavar="SPEC",
        help="microphone offered for recording the participant's voice: none | default | a "
        "device index or name (kept in the settings; recorded only with consent)",
    )
    p.add_argument("--settings", type=Path, default=None, help="use this INI settings file")
    p.add_argument(
        "--or-demo",
        action="store_true",
        help="without a display, run `recall-lab demo` instead (what `make run` does)",
    )
    p.set_defaults(func=run)


def display_problem() -> str:
    """Why Qt cannot open windows here, or ``""`` if it can."""
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform.startswith(("offscreen", "minimal", "vnc")):
        return ""
    if (
        sys.platform.startswith("linux")
        and not platform
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
    try:
        import PyQt6.QtWidgets  # noqa: F401
    except ImportError as exc:
        return f"PyQt6 is not installed ({exc}); install recall-lab[app]"
    # Qt aborts the process when its platform plugin cannot start (missing xcb libraries, a
    # display that refuses connections), so try it in a child first.
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "Qt did not start within 30 s"
    if probe.returncode != 0:
        lines = [ln for ln in probe.stderr.splitlines() if ln.strip()]
        hint = next((ln for ln in lines if "plugin" in ln.lower()), lines[-1] if lines else "")
        return f"Qt cannot open a window ({hint.strip()[:160]})"
    return ""


def run(args: argparse.Namespace) -> int:
    problem = display_problem()
    if problem:
        if args.or_demo:
            print(
                f"recall-lab app: {problem}; running `recall-lab demo` (headless) instead",
                file=sys.stderr,
            )
            from app.cli import main

            return main(["demo"])
        raise RecallLabError(
            f"cannot start the GUI: {problem}; run it on a desktop, under `xvfb-run`, or use "
            "`recall-lab demo` for the headless demo"
        )
    if args.time_scale is not None and args.time_scale <= 0:
        raise RecallLabError("--time-scale must be a positive number")

    from PyQt6 import QtWidgets

    from app.console import ConsoleWindow
    from app.settings import AppSettings

    qt_app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    qt_app.setApplicationName("recall-lab")
    settings = AppSettings(args.settings)
    for key, value in (
        ("session/protocol", args.protocol),
        ("session/out_dir", str(args.out_dir) if args.out_dir else None),
        ("session/time_scale", args.time_scale),
        ("participant/screen", args.screen),
        ("participant/fullscreen", True if args.fullscreen else None),
        ("participant/keyboard", args.participant_keyboard),
    ):
        if value is not None:
            settings.set(key, value)
    console = ConsoleWindow(settings)
    if args.participant:  # this run's first session only; never kept in the settings
        console.session_panel.participant.setText(args.participant)
    if args.reconstructions is not None:
        console.session_panel.reconstructions.setText(str(args.reconstructions))
    if args.source:
        console.source_panel.set_spec(args.source)
    if args.camera is not None:
        console.capture_panel.set_camera(args.camera)
    if args.microphone is not None:
        console.capture_panel.set_microphone(args.microphone)
    console.show()
    console.show_participant()
    if not args.no_connect:
        console.connect_source(console.source_panel.spec())
    return int(qt_app.exec())
