"""The ``--progress`` option shared by the long offline commands (decode, generate)."""

from __future__ import annotations

import argparse
import sys

from data_schema.progress import MODES, Progress


def add_progress_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--progress",
        choices=MODES,
        default=None,
        help="bars (on a terminal, the default there), json (one '@progress {...}' line per "
        "update on stdout, for the console), none (the default elsewhere)",
    )


def progress_from_args(args: argparse.Namespace) -> Progress:
    """The Progress the options ask for; ``--quiet`` means none."""
    mode = args.progress
    if mode is None:
        mode = "bars" if not args.quiet and sys.stderr.isatty() else "none"
    elif args.quiet and mode == "bars":
        mode = "none"
    return Progress(mode)
