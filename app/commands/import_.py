"""``recall-lab import``: bring a recording from another tool into a new session file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_schema.errors import RecallLabError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert EDF, BDF, BrainVision, FIF, EEGLAB, XDF or OpenBCI text to a session",
        description="Read a recording made by another tool and write a new recall-lab session "
        "file with all its streams and events. Samples are kept as stored (no resampling); "
        "the file records where it came from. Names in the source file are never copied: give "
        "the participant's pseudonym.",
    )
    p.add_argument(
        "file", type=Path, help="the recording (.xdf, .edf, .bdf, .vhdr, .fif, .set, .txt)"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="new .h5 session file (never overwritten)"
    )
    p.add_argument(
        "--participant",
        default=None,
        help="required: the participant's pseudonym code (e.g. P001), never a name",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


class MissingParticipantError(RecallLabError):
    """``--participant`` was not given; exit status 2 like every other usage error."""

    exit_code = 2


def run(args: argparse.Namespace) -> int:
    from data_schema.importers import import_recording
    from data_schema.recordings import describe_typing

    if not args.participant:
        raise MissingParticipantError(
            "--participant is required: pass the participant's pseudonym code, "
            "e.g. --participant P001 (a foreign file never says whose recording it is)"
        )
    show = not args.quiet and sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show and total:
            sys.stderr.write(f"\rwriting samples {100 * done / total:5.1f}%")
            sys.stderr.flush()

    if show:
        sys.stderr.write(f"reading {args.file.name}...\n")
    session = import_recording(
        args.file, args.out, participant_id=args.participant, progress=progress
    )
    if show:
        sys.stderr.write("\n")
    parts = [
        f"{name} {s.n_samples} x {s.info.n_channels} @ {s.info.nominal_rate:g} Hz"
        for name, s in session.streams.items()
    ]
    print(
        f"wrote {args.out}: {session.attrs.get('import_format')} -> {len(session.streams)} "
        f"streams ({'; '.join(parts)}), {len(session.events)} events"
    )
    for name, s in session.streams.items():
        typing = describe_typing(s.info.description or {})
        if typing:
            print(f"channels of {name}: {typing}")
    return 0
