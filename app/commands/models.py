"""``recall-lab models``: which generation models are present, and how to get the others."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the generation models and where they are; make tiny test models",
        description="List each model `recall-lab generate` can use, whether it was found in the "
        "models folder (--models, $RECALL_LAB_MODELS, or models_dir in "
        "~/.config/recall-lab/config.json), and the command that downloads it on a connected "
        "machine. Nothing is downloaded at run time.",
    )
    p.add_argument("--models", type=Path, default=None, help="models folder")
    p.set_defaults(func=run_list)
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    t = msub.add_parser(
        "make-tiny",
        help="write tiny random models of every kind (for smoke tests and CI)",
        description="Write tiny random-weight models in the real layout, with locally written "
        "tokenizers, into DIR. They exercise the whole pipeline; their output is noise.",
    )
    t.add_argument("dir", type=Path, help="models folder to create")
    t.add_argument("--only", nargs="+", default=None, help="model keys to make (default: all)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=run_make_tiny)


def run_list(args: argparse.Namespace) -> int:
    from generation.models import model_inventory, models_dir

    root = models_dir(args.models)
    print(f"models folder: {root}")
    missing_required = False
    for row in model_inventory(root):
        need = "required" if row["required"] else "optional"
        if row["path"]:
            state = "found (TINY random weights)" if row["tiny"] else "found"
            print(f"  {row['key']:<20} {need:<8} {state}: {row['path']}")
        else:
            missing_required |= row["required"]
            print(f"  {row['key']:<20} {need:<8} MISSING ({row['repo_id']})")
            print(f"  {'':<20} {'':<8} get it: {row['download']}")
            if row["note"]:
                print(f"  {'':<20} {'':<8} {row['note']}")
        print(f"  {'':<20} {'':<8} {row['role']}")
    return 1 if missing_required else 0


def run_make_tiny(args: argparse.Namespace) -> int:
    from generation.tiny import make_tiny_models

    for folder in make_tiny_models(args.dir, args.only, seed=args.seed):
        print(f"wrote {folder}")
    print(f"use with: recall-lab generate SESSION.h5 --models {args.dir}")
    return 0
