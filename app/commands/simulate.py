"""``recall-lab simulate``: write a simulated recall session with a known valence effect."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="write a simulated recall session with a known valence effect",
        description="Write a realistic session (1/f background, alpha, line noise, blinks, a "
        "noisy channel, valence key presses with human delays and misses) whose EEG carries a "
        "valence effect of the given size (frontal alpha asymmetry, frontal beta). --effect 0 "
        "gives null data.",
    )
    p.add_argument("--out", required=True, type=Path, help="new .h5 file (never overwritten)")
    p.add_argument("--effect", type=float, default=0.5, help="effect size (0 = none; 0.5)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    p.add_argument("--channels", type=int, default=32, help="EEG channels, 4-32 (32)")
    p.add_argument("--rate", type=float, default=500.0, help="sampling rate in Hz (500)")
    p.add_argument("--line-freq", type=float, default=50.0, help="mains frequency, 50 or 60")
    p.add_argument("--participant", default="SIM01", help="pseudonym code (SIM01)")
    p.add_argument(
        "--listening",
        action="store_true",
        help="start with a music-listening block (clips rated on SAM valence and arousal, the "
        "EEG following each clip's valence); the clips are written as a library folder "
        "OUT.library beside the session",
    )
    p.add_argument(
        "--voice",
        action="store_true",
        help="add a microphone stream 'audio' (a voice whose pitch and loudness follow the true "
        "affect, scaled by --effect)",
    )
    p.add_argument(
        "--face",
        action="store_true",
        help="add camera frames 'video' (a face whose mouth follows the true affect)",
    )
    p.add_argument("--clips", type=int, default=8, help="clips in the listening block (8)")
    p.add_argument("--clip-seconds", type=float, default=20.0, help="seconds per clip (20)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import math

    from data_schema.errors import ConfigError
    from data_schema.writer import check_new_session_path, check_session_name
    from decoding.simulate import SimulationSettings, simulate_session

    for name in ("duration", "rate", "effect"):
        value = getattr(args, name)
        if not math.isfinite(value):
            raise ConfigError(f"--{name} {value:g}: give a finite number")
    check_new_session_path(args.out)
    check_session_name(args.out)

    listening = None
    if args.listening:
        from decoding.simulate_listening import ListeningSettings

        if not math.isfinite(args.clip_seconds):
            raise ConfigError(f"--clip-seconds {args.clip_seconds:g}: give a finite number")
        listening = ListeningSettings(n_clips=args.clips, clip_seconds=args.clip_seconds)
    settings = SimulationSettings(
        effect=args.effect,
        duration=args.duration,
        sfreq=args.rate,
        n_channels=args.channels,
        line_freq=args.line_freq,
        seed=args.seed,
        participant_id=args.participant,
        listening=listening,
        voice=args.voice,
        face=args.face,
    )
    settings.check()
    if listening is None:
        path = simulate_session(args.out, settings)
        print(
            f"wrote {path} ({args.duration:g} s, {args.channels} channels, effect {args.effect:g})"
        )
        return 0
    return _with_library(args, settings)


def _with_library(args: argparse.Namespace, settings) -> int:
    """Write the library folder, then the session; on failure remove what was written."""
    import shutil

    from data_schema.errors import RecallLabError
    from decoding.simulate import simulate_session
    from decoding.simulate_listening import write_library
    from protocols.library import load_library

    folder = args.out.with_suffix(".library")
    if folder.exists():
        raise RecallLabError(
            f"{folder} already exists; choose another --out (the library folder is OUT.library)"
        )
    try:
        write_library(folder, settings.listening, seed=settings.seed)
        path = simulate_session(args.out, settings, load_library(folder))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    print(
        f"wrote {path} ({args.duration:g} s, {args.channels} channels, effect {args.effect:g}, "
        f"{settings.listening.n_clips} clips) and its music library {folder}"
    )
    return 0
