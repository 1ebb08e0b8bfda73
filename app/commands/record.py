"""``recall-lab record``: record a live source into a new session file."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from data_schema.errors import RecallLabError

#: Seconds between pulls from the device: as often as the file is flushed. Nothing shows the
#: signal live here, so each pull is followed by one write and flush of the recorder
#: (data_schema.recorder), which costs a fraction of the CPU of many small pulls; timestamps
#: are the same, and a sample still reaches the disk within about one flush interval. The
#: console pulls every 20 ms for its scope.
PULL_INTERVAL = 0.5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "record",
        help="record a live source into a new session file",
        description="Record EEG (and its events) into a new HDF5 session file. Ctrl-C stops "
        "cleanly; a crash or power loss loses at most about half a second (the writer "
        "flushes twice a second).",
    )
    p.add_argument(
        "--source",
        default="synthetic",
        help="synthetic (default) | brainflow:<board>[?param=value...] | lsl:<name> | "
        "replay:<file>",
    )
    p.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    p.add_argument("--out", required=True, type=Path, help="new .h5 file (never overwritten)")
    p.add_argument("--participant", default="P000", help="pseudonym code, never a name")
    p.add_argument("--protocol", default="", help="protocol name stored in the file")
    p.add_argument("--notes", default="", help="session notes")
    p.add_argument("--lsl-markers", action="store_true", help="publish events on an LSL outlet")
    add_capture_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def add_capture_arguments(p: argparse.ArgumentParser) -> None:
    """``--camera`` and ``--microphone`` (shared with ``recall-lab demo``)."""
    p.add_argument(
        "--camera",
        default=None,
        metavar="DEVICE",
        help="also record the participant's face: /dev/videoN, N, or file:VIDEO (played as if "
        "live), with ?width=&height=&fps=&quality= (JPEG, default 85); stored as /videos/video "
        "(docs/capture.md)",
    )
    p.add_argument(
        "--microphone",
        default=None,
        metavar="DEVICE",
        help="also record the participant's voice: default, a device index or name "
        "(`recall-lab boards --microphones` lists them), with ?rate=16000&channels=1; stored as "
        "/streams/audio",
    )


def open_capture(args: argparse.Namespace, pull_interval: float | None = None):
    """The camera and microphone the arguments ask for, opened (``None`` where not asked).

    Opened before the session file exists, so a device that cannot be used costs nothing; on
    failure what was opened is closed again and the one-line error goes up.
    """
    camera = microphone = None
    try:
        if args.camera:
            from drivers.camera import parse_camera

            camera = parse_camera(args.camera)
            camera.open()
        if args.microphone:
            from drivers.microphone import parse_microphone

            microphone = parse_microphone(args.microphone, pull_interval=pull_interval)
            microphone.open()
    except BaseException:
        for dev in (camera, microphone):
            if dev is not None:
                dev.stop()
        raise
    return camera, microphone


def _progress(recorder, started: float, duration: float | None, final: bool = False) -> None:
    st = recorder.status()
    n = sum(st.samples_written.values())
    el = time.monotonic() - started
    total = f"/{duration:.0f}" if duration else ""
    line = (
        f"\rrecording {el:6.1f}{total} s  {n:9d} samples  {st.events_written:5d} events  "
        f"{st.file_bytes / 1e6:7.2f} MB"
    )
    sys.stderr.write(line + ("\n" if final else ""))
    sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from data_schema.errors import ConfigError
    from data_schema.writer import (
        check_new_session_path,
        check_pseudonym,
        check_session_name,
    )
    from drivers.spec import parse_source

    if args.duration is not None and not 0 < args.duration < float("inf"):
        raise ConfigError(
            f"--duration {args.duration:g}: give a positive, finite number of seconds (leave it "
            "out to record until Ctrl-C)"
        )
    # Cheap checks first: a mistyped --out or participant never costs a device connection.
    try:
        check_pseudonym(args.participant)
    except ValueError as exc:
        raise ConfigError(f"--participant: {exc}") from None
    check_new_session_path(args.out)
    check_session_name(args.out)
    source = parse_source(args.source, pull_interval=PULL_INTERVAL)
    camera, microphone = open_capture(args, PULL_INTERVAL)
    stop = threading.Event()
    # Handlers go in before the file exists: a Ctrl-C or SIGTERM in the milliseconds while it
    # is created then stops the recording cleanly instead of leaving a half-made file.
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return _record(args, source, stop, camera, microphone)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _record(args: argparse.Namespace, source, stop: threading.Event, camera, microphone) -> int:
    from data_schema.recorder import Recorder
    from data_schema.writer import SessionWriter

    try:
        source.open()  # fail on connection before the file exists
        writer = SessionWriter(
            args.out, participant_id=args.participant, protocol=args.protocol, notes=args.notes
        )
    except BaseException:
        for dev in (source, camera, microphone):
            if dev is not None:
                dev.stop()
        raise
    sinks = []
    outlet = None
    if args.lsl_markers:
        from drivers.outlets import MarkerOutlet

        outlet = MarkerOutlet(f"recall-lab-markers-{writer.session_id}")
        sinks.append(outlet.push_event)
    sources = {"eeg": source}
    if microphone is not None:
        sources[microphone.name] = microphone
    cameras = {camera.name: camera} if camera is not None else {}
    recorder = Recorder(writer, sources, event_sinks=sinks, frame_sources=cameras)
    started = time.monotonic()
    show = not args.quiet and sys.stderr.isatty()
    try:
        recorder.start()
        next_report = started + 1.0
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if args.duration is not None and elapsed >= args.duration:
                break
            if recorder.error is not None or source.error is not None or source.finished:
                break
            # Twice a second is enough to notice an error or the end of a playback (the file
            # is safe either way); a --duration ends on time.
            wait = 0.5 if args.duration is None else min(0.5, args.duration - elapsed)
            stop.wait(max(wait, 0.0))
            if show and time.monotonic() >= next_report:
                _progress(recorder, started, args.duration)
                next_report += 1.0
    finally:
        recorder.stop()
        if outlet is not None:
            outlet.close()
    if show:
        _progress(recorder, started, args.duration, final=True)
    st = recorder.status()
    lost = sum(st.samples_lost.values())
    video = "".join(
        f", {n} {name} frames (dropped {st.frames_dropped.get(name, 0)})"
        for name, n in st.frames_written.items()
    )
    print(
        f"wrote {args.out}: {sum(st.samples_written.values())} samples, "
        f"{st.events_written} events{video}, {time.monotonic() - started:.1f} s, "
        f"lost {lost} samples"
    )
    for dev in (camera, microphone):
        if dev is not None and dev.error is not None:
            # The EEG went on; the file marks where (a source_error event).
            print(f"warning: {dev.error}; the recording went on without it", file=sys.stderr)
    if recorder.error is not None:
        raise recorder.error
    if source.error is not None:
        raise RecallLabError(f"{source.error}; everything recorded until then is in {args.out}")
    return 0
