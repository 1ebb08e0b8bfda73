"""Run the benchmarks and rebuild ``docs/benchmarks.md`` from their results.

Usage::

    python benchmarks/run_all.py                      # every benchmarks/bench_*.py, in turn
    python benchmarks/run_all.py record replay        # bench_record.py and bench_replay.py
    python benchmarks/run_all.py replay --seconds 10  # options go to every script selected
    python benchmarks/run_all.py --docs-only          # only rebuild docs/benchmarks.md
    python benchmarks/run_all.py --list

Each script prints its figures and writes ``benchmarks/results/<area>.json`` and ``.md``; this
runner then joins every ``benchmarks/results/*.md`` into ``docs/benchmarks.md``. A script that
fails does not stop the others; the exit code says whether all succeeded.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DOCS_PAGE = REPO / "docs" / "benchmarks.md"
#: The note reaches every script through the environment, so scripts need no --note option.
NOTE_ENV = "RECALL_LAB_BENCH_NOTE"

HEADER = """# Benchmarks

Speed and faithfulness figures for recall-lab, measured by the scripts in `benchmarks/` (never
by timed tests). Each script prints its figures and writes them to
`benchmarks/results/<area>.json`, with the table below as `benchmarks/results/<area>.md`; this
page is rebuilt from those files by `make bench` (`python benchmarks/run_all.py`), or without
running anything by `python benchmarks/run_all.py --docs-only`.

Machines are noisy: where a peer exists (LabRecorder for recording), it is measured in the same
run on the same input and the figure to read is the ratio; latencies are given as medians and
99th percentiles. Every section names the machine, its load and the library versions it ran
with. See `benchmarks/README.md` for what each script measures and how to run it.
"""


def available() -> dict[str, Path]:
    """Benchmark scripts by short name (``bench_record.py`` -> ``record``)."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(BENCH_DIR.glob("bench_*.py"))}


def _demote(markdown: str) -> str:
    """Make an area's page fit under this page's title: its top heading becomes ``##``."""
    levels = [len(m.group(1)) for m in re.finditer(r"^(#+) ", markdown, flags=re.M)]
    shift = 2 - min(levels) if levels else 0
    if shift <= 0:
        return markdown
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + shift) + " ", markdown, flags=re.M)


def build_docs(results_dir: Path = RESULTS_DIR, page: Path = DOCS_PAGE) -> Path:
    """Write ``page`` from every ``<results_dir>/*.md`` (foundation first, then by name).

    A results file written through ``_util.update_results`` whose markdown is missing or older
    than its JSON (a JSON edited or merged by hand) is re-rendered first; a newer markdown is
    left as its script wrote it.
    """
    sys.path.insert(0, str(BENCH_DIR))
    from _util import render_markdown

    for js in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(js.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # not ours to judge: its .md, if any, is used as it is
        md = js.with_suffix(".md")
        if md.exists() and md.stat().st_mtime >= js.stat().st_mtime:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("sections"), dict):
            try:
                md.write_text(render_markdown(doc))
            except (KeyError, TypeError, AttributeError):
                continue
    parts = sorted(results_dir.glob("*.md"), key=lambda p: (p.stem != "foundation", p.stem))
    body = [HEADER]
    if not parts:
        body.append("No results yet: run `make bench`.\n")
    for md in parts:
        text = md.read_text().strip()
        if not text.startswith("#"):
            text = f"## {md.stem}\n\n{text}"
        body.append(_demote(text) + "\n")
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(body))
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Run benchmarks/bench_*.py in turn and rebuild docs/benchmarks.md. "
        "Options not listed here are passed to every selected script.",
    )
    p.add_argument("names", nargs="*", help="scripts to run (record, replay...); default: all")
    p.add_argument("--list", action="store_true", help="list the benchmark scripts and exit")
    p.add_argument("--docs-only", action="store_true", help="only rebuild the docs page")
    p.add_argument("--results-dir", type=Path, default=None, help="results folder (passed on)")
    p.add_argument("--docs", type=Path, default=DOCS_PAGE, help="docs page to write")
    p.add_argument(
        "--note",
        default=None,
        help="note stored with every result (e.g. what else ran); passed as $" + NOTE_ENV,
    )
    args, passthrough = p.parse_known_args(argv)
    scripts = available()
    if args.list:
        for name, path in scripts.items():
            doc = path.read_text().split('"""')[1].strip().splitlines()[0]
            print(f"{name:12s} {doc}")
        return 0
    unknown = [n for n in args.names if n not in scripts]
    if unknown:
        print(
            f"no benchmark named {', '.join(unknown)}; available: {', '.join(scripts)}",
            file=sys.stderr,
        )
        return 2
    results_dir = args.results_dir or RESULTS_DIR
    if args.results_dir is not None:
        passthrough += ["--results-dir", str(args.results_dir)]
    failed: list[str] = []
    if not args.docs_only:
        for name in args.names or list(scripts):
            print(f"=== {name}: {scripts[name].name} {' '.join(passthrough)}", flush=True)
            t0 = time.monotonic()
            env = dict(os.environ)
            if args.note is not None:
                env[NOTE_ENV] = args.note
            rc = subprocess.call(
                [sys.executable, str(scripts[name]), *passthrough], cwd=REPO, env=env
            )
            print(f"=== {name}: exit {rc} after {time.monotonic() - t0:.0f} s\n", flush=True)
            if rc != 0:
                failed.append(name)
    page = build_docs(results_dir, args.docs)
    print(f"wrote {page}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
