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
    from data_schema.errors import RecallLabError
    from data_schema.exporters import export_session
    from data_schema.writer import check_new_session_path, check_writable_folder

    if args.line_freq is not None and args.line_freq not in (50, 60):
        raise RecallLabError(
            f"--line-freq {args.line_freq:g}: power lines run at 50 or 60 Hz; give one of them"
        )
    if args.file.suffix.lower() in (".h5", ".hdf5") and args.file.is_file():
        # A session the validator rejects (all-NaN samples, broken timestamps) would fail
        # half-way through a writer or export garbage: refuse it before anything is written.
        from data_schema.validator import refuse_invalid_session

        refuse_invalid_session(args.file, "export")
    show = not args.quiet and sys.stderr.isatty()

    def progress(message: str) -> None:
        if show:
            sys.stderr.write(f"{message}...\n")
            sys.stderr.flush()

    # Where the export goes is checked before any work: a folder, an existing file, a missing
    # or read-only folder fail at once, with nothing written.
    if args.format != "bids":
        check_new_session_path(args.out)
        check_writable_folder(args.out.parent)
    else:
        check_writable_folder(args.out)
    new_files = [p for p in _outputs(args.out) if not p.exists()]
    try:
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
    except BaseException as exc:
        if args.format != "bids":
            _remove_partial(new_files)  # a failed export leaves nothing half-written
        failure = _write_failure(args.out, exc) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from None
        raise
    print(f"wrote {args.format} export: " + ", ".join(str(f) for f in files))
    return 0


def _outputs(out: Path) -> list[Path]:
    """The files an export to ``out`` writes (BrainVision adds .vmrk and .eeg beside .vhdr)."""
    if out.suffix.lower() == ".vhdr":
        return [out, out.with_suffix(".vmrk"), out.with_suffix(".eeg")]
    return [out]


def _remove_partial(paths: list[Path]) -> None:
    """Remove what a failed export wrote (only files that did not exist before it)."""
    for p in paths:
        try:
            if p.is_file():
                p.unlink()
        except OSError:
            pass


def _write_failure(out: Path, exc: OSError):
    """A one-line error for an export the disk refused, or None for other errors."""
    import errno

    from data_schema.errors import DiskFullError, RecallLabError

    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DiskFullError(f"cannot write {out}: the disk is full; nothing was left behind")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return RecallLabError(f"cannot write {out}: the folder {out.parent} is read-only")
    text = str(exc)
    if exc.errno is None and "requested" in text and "written" in text:
        # A short write without an errno (edfio, numpy's tofile): the disk took no more.
        return DiskFullError(
            f"cannot write {out}: the disk took only part of it ({text}); the disk is probably "
            "full; nothing was left behind"
        )
    return None
