"""``recall-lab info``: what a session file holds, at a glance (or as JSON)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="summarise a session file",
        description="Summarise a session file: ids, participant pseudonym, protocol, times, "
        "streams (channels, nominal rate and the rate measured outside gaps, as validate measures "
        "it; samples, duration, gaps), events by "
        "source/label, memories and derived results. Reads timestamps only, so it is quick on "
        "long recordings.",
    )
    p.add_argument("file", type=Path, help="session file (.h5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def run(args: argparse.Namespace) -> int:
    from data_schema.summary import summarize_session

    s = summarize_session(args.file)
    if args.json:
        print(json.dumps(s.to_dict(), indent=2))
        return 0
    close = "yes" if s.clean_close else "NO (crash or still recording: data end at last flush)"
    if s.stop_reason:
        close = f"NO, stopped early: {s.stop_reason}"
    lines = [
        f"file          {s.path} ({_size(s.file_bytes)})",
        f"session       {s.session_id} (schema {s.schema_version}, "
        f"recall-lab {s.software_version})",
        f"participant   {s.participant_id}",
        f"protocol      {s.protocol or '(none)'}",
        f"started       {s.started_at}",
        f"ended         {s.ended_at or '(not recorded)'}",
        f"clean close   {close}",
        f"streams       {len(s.streams)}",
    ]
    for st in s.streams:
        types = ", ".join(f"{k} x{v}" for k, v in st.channel_types.items())
        lines.append(
            f"  {st.name:<10} {st.channels} ch ({types}; {', '.join(st.units)}), "
            f"{st.nominal_rate:g} Hz nominal / {st.measured_rate:.2f} Hz measured, "
            f"{st.samples} samples, {st.duration_s:.1f} s, {st.gaps} gap(s)"
            + (f" totalling {st.gap_seconds:.2f} s" if st.gaps else "")
            + f", from {st.source or '?'}"
        )
    if s.videos:
        lines.append(f"videos        {len(s.videos)}")
    for v in s.videos:
        lines.append(
            f"  {v.name:<10} {v.width}x{v.height} {v.codec}, {v.nominal_rate:g} fps nominal / "
            f"{v.measured_rate:.2f} fps measured, {v.frames} frames, {v.duration_s:.1f} s, "
            f"{v.gaps} gap(s), from {v.source or '?'}"
        )
    lines.append(f"events        {s.events}")
    for kind, n in s.events_by_kind.items():
        lines.append(f"  {kind:<30} {n}")
    lines.append(f"memories      {len(s.memories)}")
    for m in s.memories:
        desc = (
            "no description"
            if m.description_chars is None
            else (f"description {m.description_chars} chars")
        )
        sketch = f"sketch {m.sketch_points} points" + (" + image" if m.sketch_image else "")
        lines.append(f"  {m.memory_id:<10} {desc}, {sketch}, melody {m.melody_seconds:.1f} s")
    lines.append(f"derived       {sum(len(r) for r in s.derived.values())} run(s)")
    for stage, runs in s.derived.items():
        lines.append(f"  {stage:<10} {', '.join(runs) or '(none)'}")
    print("\n".join(lines))
    return 0
