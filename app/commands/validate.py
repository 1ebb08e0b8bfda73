"""``recall-lab validate``: check a session file against the spec and explain each problem."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check a session file against the spec",
        description="Check a session file against data_schema/SPEC.md. Prints each problem on "
        "its own line (error or warning, where, what, what it means). Exits 0 when there are no "
        "errors (warnings allowed), 1 when there are errors, 2 when the file cannot be read.",
    )
    p.add_argument("file", type=Path, help="session file (.h5)")
    p.add_argument("--json", action="store_true", help="print the problems as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_schema.validator import validate_session

    problems = validate_session(args.file)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(args.file),
                    "valid": errors == 0,
                    "errors": errors,
                    "warnings": warnings,
                    "problems": [p.to_dict() for p in problems],
                },
                indent=2,
            )
        )
    else:
        for p in problems:
            print(p)
        verdict = "follows the session spec" if errors == 0 else "does not follow the session spec"
        print(f"{args.file} {verdict}: {errors} error(s), {warnings} warning(s)")
    return 1 if errors else 0
