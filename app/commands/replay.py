"""``recall-lab replay``: play a recording as a live source, optionally on LSL."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from data_schema.errors import RecallLabError


def parse_speed(text: str) -> float:
    """``max`` (or ``0``) for as fast as possible, else a positive factor."""
    if text.strip().lower() in ("max", "0", "inf"):
        return 0.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a speed: give a factor such as 1, 2.5 or max"
        ) from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the speed must be a positive factor or max")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="play a recording back in real time (or faster), optionally as an LSL amplifier",
        description="Play a recall-lab session or any recording (XDF, EDF, BDF, BrainVision, "
        "FIF, EEGLAB .set, OpenBCI GUI .txt) with its events. With --lsl the samples and "
        "events are published as LSL streams (type EEG and Markers), so LabRecorder, MNE-LSL or "
        "the OpenBCI GUI see a live amplifier; the recording's other streams (the voice: type "
        "Audio) and cameras (type Video: JPEG frames in base64, and VideoFrameIndex) go out "
        "beside it on the same clock. Ctrl-C stops.",
    )
    p.add_argument("file", type=Path, help="recording to play")
    p.add_argument(
        "--speed",
        type=parse_speed,
        default=1.0,
        metavar="X|max",
        help="1 = real time (default), 5 = five times faster, max = as fast as possible",
    )
    p.add_argument("--lsl", action="store_true", help="publish data and markers on LSL")
    p.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl-C)")
    p.add_argument("--name", default=None, help="LSL stream name (default: recall-lab-<file>)")
    p.add_argument("--stream", default="eeg", help="which stream of the recording (default eeg)")
    p.add_argument(
        "--only-stream",
        action="store_true",
        help="with --lsl: publish only --stream and the markers, not the recording's other "
        "streams (audio) and videos",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from drivers.replay import ReplaySource

    source = ReplaySource(args.file, speed=args.speed, loop=args.loop, stream=args.stream)
    info = source.open()  # a bad file fails here, before any outlet appears
    data_outlet = marker_outlet = media = None
    if args.lsl:
        from drivers.outlets import DataOutlet, MarkerOutlet

        name = args.name or f"recall-lab-{args.file.stem}"
        data_outlet = DataOutlet(info, name=name)
        marker_outlet = MarkerOutlet(f"{name}-markers")
        print(
            f"publishing LSL streams {name!r} ({info.stream_type}, {info.n_channels} channels, "
            f"{info.nominal_rate:g} Hz) and {name + '-markers'!r}",
            file=sys.stderr,
        )
        if not getattr(args, "only_stream", False):
            from drivers.replay_video import MediaReplay

            try:
                media = MediaReplay(source, name, say=lambda m: print(m, file=sys.stderr))
            except BaseException:
                data_outlet.close()
                marker_outlet.close()
                raise
            if media.empty:
                media = None
    stop = threading.Event()
    # Ctrl-C ends the replay cleanly (outlets withdrawn); only the main thread may set handlers.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if in_main else None
    show = not args.quiet and sys.stderr.isatty()
    started = time.monotonic()
    pos = ev_pos = n_samples = n_events = 0
    try:
        source.start()
        next_report = started
        while True:
            finished = source.finished or not source.running
            data, ts, pos, lost = source.buffer.read_since(pos)
            if lost:
                raise RecallLabError(f"replay lost {lost} samples: the reader fell behind")
            events, ev_pos = source.events.read_since(ev_pos)
            if data_outlet is not None:
                data_outlet.push_chunk(data, ts)
                for e in events:
                    marker_outlet.push_event(e)
            if media is not None:
                media.poll()
                # The voice or face may go on after the EEG's last sample.
                finished = finished and (media.finished or source.error is not None)
            n_samples += len(ts)
            n_events += len(events)
            if show and time.monotonic() >= next_report:
                _progress(source, n_samples, n_events)
                next_report += 0.5
            if finished or stop.is_set():
                break
            stop.wait(0.01)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
        source.stop()
        if data_outlet is not None:
            data_outlet.close()
            marker_outlet.close()
        if media is not None:
            media.close()
    if show:
        _progress(source, n_samples, n_events)
        sys.stderr.write("\n")
    if source.error is not None:
        raise source.error
    how = "stopped by Ctrl-C" if stop.is_set() else "done"
    also = ""
    if media is not None:
        also = f"; beside it {media.n_samples} samples of other streams, {media.n_frames} frames"
    print(
        f"replayed {args.file.name}: {n_samples} samples, {n_events} events in "
        f"{time.monotonic() - started:.2f} s ({how}){also}"
    )
    return 0


def _progress(source, n_samples: int, n_events: int) -> None:
    played, total = source.progress
    speed = "max" if source.speed == 0 else f"x{source.speed:g}"
    sys.stderr.write(
        f"\rreplaying {played:7.1f}/{total:.1f} s ({speed})  {n_samples:9d} samples  "
        f"{n_events:5d} events"
    )
    sys.stderr.flush()
