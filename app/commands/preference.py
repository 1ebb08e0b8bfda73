"""``recall-lab preference``: the participant's verdict on the reconstructions (sessions
recorded with a ``preference`` phase), per memory and over the sessions given."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "preference",
        help="the participant's verdict: reconstruction vs reordered control, ratings, r",
        description="Read sessions recorded with a preference phase (docs/protocols.md): per "
        "memory, which video the participant preferred (the reconstruction from the reported "
        "affect or its reordered control, shown blind), the ratings of each, and Pearson's r "
        "between the valence rated while watching and the valence each video was made to "
        "carry. Over all sessions given: the preference rate with an exact binomial test "
        "against 50 %, and the mean r over participants with a 95 % confidence interval. "
        "Each session gets a new /derived/study/run-NNN (unless --no-write).",
    )
    p.add_argument("sessions", nargs="+", type=Path, help="judging sessions (.h5)")
    p.add_argument(
        "--reconstructions",
        type=Path,
        default=None,
        help="the session whose generate run made the videos (default: the one each judging "
        "session names)",
    )
    p.add_argument("--no-write", action="store_true", help="write nothing into the sessions")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from generation.preference import (
        analyse_session,
        format_summary,
        summarize,
        write_session_analysis,
    )

    # Everything is read and checked before anything is written.
    analyses = [analyse_session(p, args.reconstructions) for p in args.sessions]
    if not args.no_write:
        for path, a in zip(args.sessions, analyses, strict=True):
            a["stored"] = write_session_analysis(path, a)
    summary = summarize(analyses)
    if args.json:
        print(json.dumps({"sessions": analyses, "summary": summary}, indent=2))
        return 0
    for a in analyses:
        print(f"{a['session']} ({a['participant']}):")
        for memory, m in a["memories"].items():
            chose = {True: "the reconstruction", False: "the control", None: "nothing"}[
                m["chose_reconstruction"]
            ]
            r = m.get("r_reconstruction")
            rtext = "r not computed" if r is None else f"r = {r:.3f}"
            print(f"  {memory}: chose {chose}; ratings {m['ratings']}; {rtext}")
        if "stored" in a:
            print(f"  stored as {a['stored']}")
    print(format_summary(summary))
    return 0
