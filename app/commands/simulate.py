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

    settings = SimulationSettings(
        effect=args.effect,
        duration=args.duration,
        sfreq=args.rate,
        n_channels=args.channels,
        line_freq=args.line_freq,
        seed=args.seed,
        participant_id=args.participant,
    )
    settings.check()
    path = simulate_session(args.out, settings)
    print(f"wrote {path} ({args.duration:g} s, {args.channels} channels, effect {args.effect:g})")
    return 0
