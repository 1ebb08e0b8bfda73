"""``recall-lab decode``: decode valence from recorded sessions and evaluate it honestly."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands._progress import add_progress_option, progress_from_args
from decoding.config import preset_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode",
        help="decode valence from sessions (CEBRA, band power) with leakage-free evaluation",
        description="Preprocess the sessions' EEG with MNE, build valence labels from the key "
        "presses (or ratings), fit CEBRA and baseline decoders on training folds only, report "
        "weighted F1 and balanced accuracy with a permutation chance level (and the leaky RYM "
        "protocol beside it), and store the decoded valence trajectory in each session file "
        "under /derived/decoding/run-NNN. Several sessions are decoded together (held-out "
        "sessions or participants).",
    )
    p.add_argument("sessions", nargs="+", type=Path, help="session files (.h5)")
    p.add_argument("--config", type=Path, default=None, help="YAML or JSON file of settings")
    p.add_argument(
        "--preset",
        default=None,
        help="settings from decoding/presets/NAME.yaml (--config changes them further): "
        + ", ".join(preset_names()),
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        help="report folder (default: <first session>.decoding/); a new run-NNN inside",
    )
    p.add_argument(
        "--library",
        type=Path,
        default=None,
        help="music library folder the sessions' listening blocks played (clips.csv and the "
        "audio), for --preset music; default: the session's own music_library",
    )
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        help="models folder (the audio tagger for --preset music; AST and ViT for multimodal)",
    )
    p.add_argument("--no-write", action="store_true", help="do not add results to the files")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_schema.errors import ConfigError
    from decoding.config import load_config
    from decoding.pipeline import decode_sessions, summary_json

    if args.config is not None and args.config.is_dir():
        raise ConfigError(
            f"--config {args.config} is a folder: give a YAML or JSON settings file inside it"
        )
    cfg = load_config(args.config, preset=args.preset)
    if args.library is not None:
        cfg.music.library = str(args.library)
    if args.models is not None:
        cfg.music.models = str(args.models)
        cfg.fusion.models = str(args.models)
    progress = progress_from_args(args)
    with progress.cancellable():
        outcome = decode_sessions(
            args.sessions, cfg, report_dir=args.report, progress=progress, write=not args.no_write
        )
    if args.json:
        print(summary_json(outcome))
        return 0
    s = outcome.summary
    print(f"{len(s['sessions'])} session(s), {s['n_windows']} windows, device {s['device']}")
    for name, m in s["decoders"].items():
        leaky = m["leaky_f1_weighted"]
        if m["p_value"] is None:
            chance = "chance not computed (evaluation.n_permutations is 0)"
        else:
            chance = f"chance F1 {m['chance_f1_weighted']:.3f}  p={m['p_value']:.3f}"
        print(
            f"  {name:20s} weighted F1 {_num(m['f1_weighted'])}  balanced acc "
            f"{_num(m['balanced_accuracy'])}  {chance}  [{m['split']}]"
            + ("" if leaky is None else f"  | leaky RYM protocol F1 {leaky:.3f} (LEAKY)")
        )
    for path, run_name in s.get("runs", {}).items():
        print(f"  results: {path}:{run_name}")
    if "report" in s:
        print(f"  report:  {s['report']}")
    return 0


def _num(value: float | None) -> str:
    return "not computed" if value is None else f"{value:.3f}"
