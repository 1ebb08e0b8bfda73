"""``recall-lab import``: bring a recording from another tool into a new session file."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from data_schema.errors import RecallLabError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="convert EDF, BDF, BrainVision, FIF, EEGLAB, XDF, OpenBCI text or DEAP to a session",
        description="Read a recording made by another tool and write a new recall-lab session "
        "file with all its streams and events. Samples are kept as stored (no resampling); "
        "the file records where it came from. Names in the source file are never copied: give "
        "the participant's pseudonym. DEAP: a data_preprocessed_python/sNN.dat file becomes "
        "one session of 40 music-listening trials with their ratings (docs/deap.md); a folder "
        "holding s01.dat .. s32.dat becomes one session per participant in the --out folder, "
        "named and pseudonymised <participant>NN (--participant DEAP -> DEAP01.h5 ...).",
    )
    p.add_argument(
        "file",
        type=Path,
        help="the recording (.xdf, .edf, .bdf, .vhdr, .fif, .set, .txt, DEAP sNN.dat), a "
        "DEAP data_preprocessed_python folder, or an EAV subjectNN folder",
    )
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        help="new .h5 session file (never overwritten); for a DEAP folder, the folder for the "
        "sessions",
    )
    p.add_argument(
        "--participant",
        default=None,
        help="required: the participant's pseudonym code (e.g. P001), never a name; for a "
        "DEAP folder, the prefix of every participant's code (DEAP -> DEAP01, DEAP02, ...)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


class MissingParticipantError(RecallLabError):
    """``--participant`` was not given; exit status 2 like every other usage error."""

    exit_code = 2


def run(args: argparse.Namespace) -> int:
    from data_schema.import_deap import deap_files
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

    if args.file.is_dir() and deap_files(args.file):
        return _run_deap_folder(args, show)
    from data_schema.import_eav import is_eav_participant

    if is_eav_participant(args.file):
        return _run_eav(args, show, progress)
    if args.file.suffix.lower() == ".dat":
        return _run_deap(args, show, progress)
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


def _run_eav(args: argparse.Namespace, show: bool, progress: Callable[[int, int], None]) -> int:
    """One EAV ``subjectNN`` folder: EEG, voice and face of its trials (docs/capture.md)."""
    from data_schema.import_eav import import_eav
    from data_schema.reader import read_session

    if show:
        sys.stderr.write(f"reading {args.file.name}...\n")
    out = import_eav(args.file, args.out, participant_id=args.participant, progress=progress)
    if show:
        sys.stderr.write("\n")
    s = read_session(out)
    video = s.videos.get("video")
    print(
        f"wrote {out}: eav ({args.file.name}) -> eeg {s.eeg.n_samples} x 30 @ 500 Hz, "
        f"{'audio, ' if 'audio' in s.streams else ''}"
        f"{video.n_frames if video else 0} video frames, "
        f"{len(s.events_where(label='phase_start'))} trials"
    )
    return 0


def _run_deap(args: argparse.Namespace, show: bool, progress: Callable[[int, int], None]) -> int:
    """One DEAP ``sNN.dat`` (a pickle; anything else named .dat is refused in one line)."""
    from data_schema.errors import SessionFileError
    from data_schema.import_deap import (
        IMPORT_FORMAT,
        check_new_output,
        read_deap_file,
        write_deap_session,
    )
    from data_schema.writer import check_pseudonym

    try:
        check_pseudonym(args.participant)
    except ValueError as exc:
        raise SessionFileError(str(exc)) from None
    check_new_output(args.out)  # before reading a 100 MB input
    if show:
        sys.stderr.write(f"reading {args.file.name}...\n")
    deap = read_deap_file(args.file)
    write_deap_session(deap, args.out, participant_id=args.participant, progress=progress)
    if show:
        sys.stderr.write("\n")
    who = f", DEAP participant {deap.number}" if deap.number else ""
    rows = deap.n_trials * deap.n_samples
    print(
        f"wrote {args.out}: {IMPORT_FORMAT} ({args.file.name}{who}) -> 2 streams (eeg {rows} "
        f"x 32 @ 128 Hz; peripheral {rows} x 8 @ 128 Hz), {deap.n_trials} trials of "
        f"{deap.listening_s:g} s music, each with 4 ratings"
    )
    return 0


def _run_deap_folder(args: argparse.Namespace, show: bool) -> int:
    """A ``data_preprocessed_python`` folder: one session per ``sNN.dat``."""
    from data_schema.import_deap import import_deap_folder

    def progress(done: int, total: int) -> None:
        if show:
            sys.stderr.write(f"\rimported {done}/{total} participants")
            sys.stderr.flush()

    written = import_deap_folder(args.file, args.out, args.participant, progress=progress)
    if show:
        sys.stderr.write("\n")
    names = ", ".join(p.name for p in written[:3]) + (", ..." if len(written) > 3 else "")
    print(f"wrote {len(written)} sessions to {args.out}: {names}")
    return 0
