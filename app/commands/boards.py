"""``recall-lab boards``: the BrainFlow boards a source can name, and the LSL streams visible."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "boards",
        help="list BrainFlow boards (and, with --lsl, the LSL streams on the network)",
        description="List the BrainFlow boards usable as brainflow:<name>[?param=value...] with "
        "their id, sampling rate, EEG channel count and the connection parameters they need. "
        "With --lsl, also list the LSL streams visible now (usable as lsl:<name> or "
        "lsl:source_id=<id>).",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--lsl", action="store_true", help="also list visible LSL streams")
    p.add_argument(
        "--keyboards",
        action="store_true",
        help="also list keyboards readable directly (for `app --participant-keyboard`)",
    )
    p.add_argument(
        "--cameras",
        action="store_true",
        help="also list V4L2 cameras (for `record --camera` and the console's Capture panel)",
    )
    p.add_argument(
        "--microphones",
        action="store_true",
        help="also list sound input devices (for `record --microphone`)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=1.0,
        help="seconds to listen for LSL streams (default 1)",
    )
    p.set_defaults(func=run)


def _table(rows: list[dict[str, object]], columns: list[tuple[str, str]]) -> str:
    cells = [[h for _, h in columns]] + [
        ["" if r.get(k) is None else str(r.get(k)) for k, _ in columns] for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(columns))).rstrip() for c in cells]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from data_schema.errors import RecallLabError
    from drivers.brainflow_source import list_boards

    if args.wait <= 0:
        raise RecallLabError("--wait must be a positive number of seconds")
    result: dict[str, object] = {"brainflow": list_boards()}
    if args.lsl:
        from drivers.lsl_source import list_lsl_streams

        result["lsl"] = list_lsl_streams(timeout=args.wait)
    if args.keyboards:
        from dataclasses import asdict

        from drivers.keyboard import list_keyboards

        result["keyboards"] = [asdict(k) for k in list_keyboards()]
    if args.cameras:
        from drivers.camera import list_cameras

        result["cameras"] = list_cameras()
    if args.microphones:
        from drivers.microphone import list_microphones

        result["microphones"] = list_microphones()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("BrainFlow boards (source: brainflow:<name>[?param=value&...]):")
    print(
        _table(
            result["brainflow"],
            [
                ("name", "name"),
                ("id", "id"),
                ("rate", "Hz"),
                ("eeg_channels", "EEG"),
                ("needs", "connection parameters"),
            ],
        )
    )
    if args.lsl:
        streams = result["lsl"]
        print()
        if not streams:
            print(f"no LSL streams visible (listened {args.wait:g} s)")
        else:
            print("LSL streams (source: lsl:<name> | lsl:type=<type> | lsl:source_id=<id>):")
            print(
                _table(
                    streams,
                    [
                        ("name", "name"),
                        ("type", "type"),
                        ("channels", "ch"),
                        ("rate", "Hz"),
                        ("format", "format"),
                        ("source_id", "source_id"),
                        ("hostname", "host"),
                    ],
                )
            )
    if args.keyboards:
        print()
        if not result["keyboards"]:
            print("no keyboard readable directly (no X display, no readable /dev/input/event*)")
        else:
            print("Keyboards (app --participant-keyboard SPEC):")
            print(_table(result["keyboards"], [("spec", "spec"), ("detail", "detail")]))
    if args.cameras:
        print()
        if not result["cameras"]:
            print("no V4L2 camera found (/sys/class/video4linux is empty)")
        else:
            print("Cameras (--camera SPEC[?width=&height=&fps=]):")
            print(_table(result["cameras"], [("spec", "spec"), ("name", "name")]))
    if args.microphones:
        print()
        if not result["microphones"]:
            print("no sound input device found (PortAudio lists none)")
        else:
            rows = [{**m, "default": "yes" if m["default"] else ""} for m in result["microphones"]]
            print("Microphones (--microphone SPEC, or default):")
            columns = [("spec", "spec"), ("hostapi", "host API"), ("channels", "ch")]
            columns += [("rate", "Hz"), ("default", "default")]
            print(_table(rows, columns))
    return 0
