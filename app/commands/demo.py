"""``recall-lab demo``: a whole session without a screen, then the offline stages.

Runs ``protocols/demo.yaml`` in real time on BrainFlow's synthetic board with a simulated
participant (valence keys, a description, a sketch, a hummed melody, SAM ratings), writes a
complete session file, prints a summary, then runs ``recall-lab decode`` and
``recall-lab generate`` on it when those commands are installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from data_schema.errors import RecallLabError

OFFLINE_STAGES = ("decode", "generate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the demo protocol headless with a simulated participant",
        description="Run a protocol (default: the two-minute demo) without a screen on "
        "BrainFlow's synthetic board, with a simulated participant, into a new session file; "
        "then run the offline stages that are installed (decode, generate).",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="new .h5 file (default: recall-lab-demo-<date>-<time>.h5 here; never overwritten)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply every phase duration (0.1: ten times faster; default 1)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated participant")
    p.add_argument(
        "--no-offline", action="store_true", help="do not run decode/generate afterwards"
    )
    p.add_argument(
        "--protocol",
        default="demo",
        help=(
            "protocol file or built-in name (demo, rym_recall, listening_demo, "
            "narration_demo); default demo"
        ),
    )
    p.add_argument(
        "--source",
        default="synthetic",
        help="EEG source: synthetic (default) | brainflow:<board>?k=v | lsl:<name> | replay:<file>",
    )
    p.add_argument("--participant", default="SIM001", help="pseudonym stored in the file")
    p.add_argument(
        "--reconstructions",
        type=Path,
        metavar="SESSION",
        help="for a protocol with a preference phase: the session whose `recall-lab generate "
        "--control` run made the reconstructions to judge (its newest run, or the phase's run:)",
    )
    p.add_argument("--lsl-markers", action="store_true", help="publish events on an LSL outlet")
    from app.commands.record import add_capture_arguments

    add_capture_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no phase-by-phase progress")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_schema.writer import check_new_session_path, check_session_name
    from drivers.spec import parse_source
    from protocols.engine import expand_protocol
    from protocols.headless import run_headless
    from protocols.loader import load_protocol, resolve_protocol
    from protocols.reconstructions import preference_run

    if not args.time_scale > 0:
        raise RecallLabError("--time-scale must be a positive number (e.g. 0.1 or 1)")
    path = resolve_protocol(args.protocol)
    protocol = load_protocol(path)
    out = args.out or Path(time.strftime("recall-lab-demo-%Y%m%d-%H%M%S.h5"))
    check_new_session_path(out)
    check_session_name(out)
    reconstructions = None
    if args.reconstructions is not None:
        from protocols.reconstructions import load_reconstructions

        run = preference_run(protocol) or "latest"
        reconstructions = load_reconstructions(args.reconstructions, run)
    # A preference phase without its videos stops here, before any device or file.
    n_steps = len(
        expand_protocol(
            protocol,
            base_dir=path.parent,
            participant_id=args.participant,
            reconstructions=reconstructions,
        )
    )
    from app.commands.record import open_capture

    source = parse_source(args.source)
    camera, microphone = open_capture(args)
    sinks = []
    outlet = None
    if args.lsl_markers:
        from drivers.outlets import MarkerOutlet

        outlet = MarkerOutlet(f"recall-lab-demo-markers-{out.stem}")
        sinks.append(outlet.push_event)
    print(
        f"demo: protocol {protocol.name} ({n_steps} phases), time scale {args.time_scale:g}, "
        f"seed {args.seed}, source {args.source} -> {out}",
        flush=True,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"  phase {line}", flush=True)

    # SIGTERM stops the demo like Ctrl-C: the protocol is aborted and the file closed.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if in_main else None
    try:
        result = run_headless(
            protocol,
            out,
            source=source,
            participant_id=args.participant,
            seed=args.seed,
            time_scale=args.time_scale,
            event_sinks=sinks,
            base_dir=path.parent,
            notes="recall-lab demo: simulated participant",
            progress=progress,
            camera=camera,
            microphone=microphone,
            reconstructions=reconstructions,
        )
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        if outlet is not None:
            outlet.close()
    print(result.summary(), flush=True)
    if result.error:
        raise RecallLabError(
            f"the session stopped early: {result.error}; everything recorded until then is in {out}"
        )
    if args.no_offline:
        return 0
    for stage in OFFLINE_STAGES:
        if not args.quiet:
            print(f"running recall-lab {stage} {out} ...", flush=True)
        print(f"{stage}: {run_offline_stage(stage, out)}", flush=True)
    return 0


def run_offline_stage(stage: str, session: Path, timeout: float = 1800.0) -> str:
    """Run ``recall-lab <stage> SESSION`` in a subprocess; a one-line outcome.

    A stage whose command is not installed is skipped with that reason; one that exits with
    an error is reported with its own one-line message.
    """
    if importlib.util.find_spec(f"app.commands.{stage}") is None:
        return f"skipped: the '{stage}' command is not installed in this recall-lab"
    cmd = [sys.executable, "-m", "app.cli", stage, str(session), "--quiet"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"stopped after {timeout:.0f} s"
    secs = time.monotonic() - t0
    lines = [ln for ln in (proc.stdout + "\n" + proc.stderr).splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    if proc.returncode == 0:
        return f"done in {secs:.1f} s" + (f" ({last})" if last else "")
    err = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    reason = (err[-1] if err else last).strip() or f"exit status {proc.returncode}"
    return f"skipped (exit {proc.returncode}): {reason}"
