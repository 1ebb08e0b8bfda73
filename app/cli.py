"""The ``recall-lab`` command line.

Each subcommand lives in ``app/commands/<name>.py`` with ``register(subparsers)`` and
``run(args) -> int``. Modules import heavy libraries inside ``run`` so ``--help`` stays fast.
User mistakes (:class:`data_schema.RecallLabError`) print one line and exit non-zero, with the
statuses of :data:`EXIT_STATUSES` (printed by ``recall-lab --help``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from data_schema.errors import RecallLabError

COMMANDS = (
    "record",
    "info",
    "validate",
    "replay",
    "import_",
    "export",
    "boards",
    "demo",
    "app",
    "simulate",
    "decode",
    "retrieve",
    "generate",
    "preference",
    "models",
    "study",
)


#: Exit statuses of every command (``recall-lab --help`` prints them; README repeats them).
EXIT_STATUSES = (
    (0, "success"),
    (
        1,
        "failure: the command ran and found a problem (validate: errors in the file; models: "
        "a required model is missing)",
    ),
    (
        2,
        "bad input: a file, option or configuration that cannot be used (one line says why; "
        "nothing is changed)",
    ),
    (3, "disk full: the disk filled while writing (what was written before is kept)"),
    (
        130,
        "interrupted or cancelled (Ctrl-C; SIGTERM too for decode and generate, as the "
        "console's Cancel sends): nothing half-made is kept",
    ),
)


def _exit_epilog() -> str:
    return "exit status:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_STATUSES)


def build_parser() -> argparse.ArgumentParser:
    from data_schema.versions import software_version

    parser = argparse.ArgumentParser(
        prog="recall-lab",
        description="Record, replay and process affective memory-recall EEG sessions.",
        epilog=_exit_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"recall-lab {software_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"app.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.command:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RecallLabError as exc:
        print(f"recall-lab {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (OSError, RuntimeError, KeyError) as exc:
        # HDF5 errors that no reader turned into a one-line message: the bytes of an input
        # file are not what HDF5 expects (cut short, flipped), or a member is missing. Name
        # the input, not h5py.
        if not _raised_in_h5py(exc):
            raise
        from data_schema.reader import damaged_file_error, is_damage

        detail = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        if not is_damage(exc):
            message = (
                f"{_inputs(args)} does not follow the session spec ({detail}); run "
                "'recall-lab validate' on it to list the problems"
            )
        else:
            message = str(damaged_file_error(_inputs(args), RuntimeError(detail)))
        print(f"recall-lab {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recall-lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`recall-lab boards | head`): not an error.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _raised_in_h5py(exc: BaseException) -> bool:
    tb = exc.__traceback__
    last = ""
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return f"{os.sep}h5py{os.sep}" in last or last.startswith("h5py")


def _inputs(args: argparse.Namespace) -> str:
    """The input file(s) a command was given, for messages about them."""
    for name in ("file", "session", "sessions"):
        value = getattr(args, name, None)
        if value:
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    source = str(getattr(args, "source", None) or "")
    if source.startswith("replay:"):
        return source[len("replay:") :].split("?")[0]
    return "an input file"


if __name__ == "__main__":
    sys.exit(main())
