"""The ``recall-lab`` command line.

Each subcommand lives in ``app/commands/<name>.py`` with ``register(subparsers)`` and
``run(args) -> int``. Modules import heavy libraries inside ``run`` so ``--help`` stays fast.
User mistakes (:class:`data_schema.RecallLabError`) print one line and exit non-zero.
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
    "generate",
    "models",
)


def build_parser() -> argparse.ArgumentParser:
    from data_schema.versions import software_version

    parser = argparse.ArgumentParser(
        prog="recall-lab",
        description="Record, replay and process affective memory-recall EEG sessions.",
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
    except KeyboardInterrupt:
        print(f"recall-lab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (`recall-lab boards | head`): not an error.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
