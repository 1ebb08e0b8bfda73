"""``recall-lab export``: write a session in another tool's format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

FORMATS = ("fif", "edf", "brainvision", "bids", "brainflow")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a session to FIF, EDF, BrainVision, BIDS or BrainFlow's playback format",
        description="Export the EEG of a session (with its events) for other tools: fif, edf "
        "(16-bit), brainvision, bids (a BIDS EEG dataset through mne-bids; --out is the dataset "
        "folder) or brainflow (the CSV that BrainFlow's playback-file board replays).",
    )
    p.add_argument("file", type=Path, help="session .h5 (or any recording recall-lab reads)")
    p.add_argument("--format", required=True, choices=FORMATS, help="output format")
    p.add_argument("--out", required=True, type=Path, help="new file, or BIDS root folder")
    p.add_argument("--stream", default="eeg", help="stream to export (default eeg)")
    p.add_argument("--task", default="recall", help="BIDS task label (default recall)")
    p.add_argument(
        "--line-freq", type=float, default=None, help="BIDS: power-line frequency, 50 or 60 Hz"
    )
    p.add_argument(
        "--master-board",
        default="synthetic",
        help="brainflow: board whose row layout to write (default synthetic)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_schema.exporters import export_session

    show = not args.quiet and sys.stderr.isatty()

    def progress(message: str) -> None:
        if show:
            sys.stderr.write(f"{message}...\n")
            sys.stderr.flush()

    files = export_session(
        args.file,
        args.format,
        args.out,
        stream=args.stream,
        task=args.task,
        line_freq=args.line_freq,
        master_board=args.master_board,
        progress=progress,
    )
    print(f"wrote {args.format} export: " + ", ".join(str(f) for f in files))
    return 0
