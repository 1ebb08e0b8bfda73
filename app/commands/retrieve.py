"""``recall-lab retrieve``: EEG-to-music retrieval on a session's listening blocks."""

from __future__ import annotations

import argparse
from pathlib import Path

from app.commands._progress import add_progress_option, progress_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retrieve",
        help="rank a music library's clips for the EEG of listening blocks (held-out clips)",
        description="Train the music-supervised encoder (--preset music settings) without each "
        "clip in turn, rank the library's clips for every EEG window of the held-out clip by "
        "cosine similarity in the shared EEG-music space, and report track retrieval (the "
        "clip heard) and emotion retrieval (clips of the same valence class) as precision at "
        "k and mean average precision, with chance levels from permuted labels. Nothing is "
        "written into the session files.",
    )
    p.add_argument("sessions", nargs="+", type=Path, help="session files with listening blocks")
    p.add_argument(
        "--library",
        type=Path,
        default=None,
        help="music library folder the listening blocks played (default: the session's own)",
    )
    p.add_argument("--models", type=Path, default=None, help="models folder (the audio tagger)")
    p.add_argument("--config", type=Path, default=None, help="YAML or JSON settings file")
    p.add_argument("--top", type=int, default=10, help="k of precision at k (10)")
    p.add_argument(
        "--permutations", type=int, default=None, help="label permutations for chance (99)"
    )
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_progress_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from data_schema.errors import ConfigError
    from decoding.config import load_config
    from decoding.pipeline import strict_json
    from decoding.retrieval import retrieve_sessions

    if args.top < 1:
        raise ConfigError(f"--top {args.top}: give at least 1")
    if args.permutations is not None and args.permutations < 0:
        raise ConfigError(f"--permutations {args.permutations}: give 0 or more")
    if args.config is not None and args.config.is_dir():
        raise ConfigError(
            f"--config {args.config} is a folder: give a YAML or JSON settings file inside it"
        )
    cfg = load_config(args.config, preset="music")
    if args.library is not None:
        cfg.music.library = str(args.library)
    if args.models is not None:
        cfg.music.models = str(args.models)
    n_perm = cfg.evaluation.n_permutations if args.permutations is None else args.permutations
    progress = progress_from_args(args)
    with progress.cancellable():
        result = retrieve_sessions(
            args.sessions, cfg, k=args.top, n_permutations=n_perm, progress=progress
        )
    if args.json:
        print(strict_json(result.as_dict()))
        return 0
    print(
        f"{len(args.sessions)} session(s), {result.track.n_queries} EEG windows as queries, "
        f"{len(result.gallery)} clips in the library, {result.folds} held-out clips"
    )
    for name, score in (("track", result.track), ("emotion", result.emotion)):
        if score.p_value is None:
            chance = "chance not computed (--permutations 0)"
        else:
            chance = (
                f"chance P@{result.k} {score.chance_precision_at_k:.3f} mAP "
                f"{score.chance_mean_average_precision:.3f}  p={score.p_value:.3f}"
            )
        print(
            f"  {name:8s} retrieval  P@{result.k} {score.precision_at_k:.3f}  mAP "
            f"{score.mean_average_precision:.3f}  {chance}"
        )
    for note in result.notes:
        print(f"  note: {note}")
    return 0
