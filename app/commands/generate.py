"""``recall-lab generate``: an audiovisual reconstruction of a recalled memory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from app.commands._progress import add_progress_option, progress_from_args

if TYPE_CHECKING:
    from generation.pipeline import GenerateConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="music, images and a synchronized video from a memory and its affect",
        description="Turn a memory's description, sketch and guiding melody, plus its affect "
        "trajectory, into per-segment prompts, MusicGen-melody music, Stable Diffusion "
        "keyframes (animated with Stable Video Diffusion or AnimateDiff when present) and an "
        "MP4 that follows one segment timeline. Models are read only from "
        "the local models folder (see `recall-lab models`).",
    )
    p.add_argument("session", type=Path, help="session file (.h5)")
    p.add_argument("--memory", default=None, help="memory id (default: every memory)")
    p.add_argument("--out", type=Path, default=None, help="output folder (a new run-NNN inside)")
    add_generation_options(p)
    p.set_defaults(func=run)


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """The options that shape a reconstruction (shared with ``study generate``)."""
    p.add_argument(
        "--affect",
        choices=("reported", "decoded"),
        default="reported",
        help="reported: valence keys/ratings (default); decoded: newest `recall-lab decode` run",
    )
    p.add_argument("--models", type=Path, default=None, help="models folder")
    p.add_argument("--seed", type=int, default=0, help="seed shared by all keyframes")
    p.add_argument("--duration", type=float, default=None, help="stretch timeline to N seconds")
    p.add_argument("--min-segment", type=float, default=4.0, help="minimum segment, s (4)")
    p.add_argument("--smoothing", type=float, default=1.0, help="affect smoothing, s (1)")
    p.add_argument("--lexicon", type=Path, default=None, help="JSON affect lexicon")
    p.add_argument("--steps", type=int, default=25, help="diffusion steps (25)")
    p.add_argument("--fps", type=float, default=24.0, help="video frame rate (24)")
    p.add_argument(
        "--transition", type=float, default=1.0, help="transition window per boundary, s (1)"
    )
    p.add_argument(
        "--transition-mode",
        default="morph",
        metavar="cut|crossfade|morph",
        help="picture across a segment boundary: cut (hard cut), crossfade (blend the two), or "
        "morph (default: in-between keyframes painted from interpolated noise, starting "
        "latents and prompt embeddings, shown across the --transition window)",
    )
    p.add_argument(
        "--morph-steps", type=int, default=4, help="morph: in-between keyframes per boundary (4)"
    )
    p.add_argument("--crossfade", type=float, default=1.0, help="music crossfade, s (1)")
    p.add_argument(
        "--music-join",
        choices=("continue", "crossfade"),
        default="continue",
        help="continue: each segment's music continues the previous segment's audio (default; "
        "the control gets its own chain); crossfade: separate clips, equal-power crossfades",
    )
    p.add_argument(
        "--music-backend",
        choices=("transformers", "audiocraft"),
        default="transformers",
        help="MusicGen-melody through transformers (default) or audiocraft (its own env: "
        "`make audiocraft-env`; checkpoint in <models>/musicgen-melody-audiocraft/)",
    )
    p.add_argument("--window", type=float, default=30.0, help="music window, s (30)")
    p.add_argument("--overlap", type=float, default=10.0, help="music window overlap, s (10)")
    p.add_argument(
        "--animation",
        choices=("auto", "svd", "animatediff", "none"),
        default="auto",
        help="animate keyframes: auto (svd/ or animatediff-motion-adapter/ when present, "
        "default), svd, animatediff, or none (still keyframes)",
    )
    p.add_argument(
        "--animation-frames", type=int, default=None, help="frames per clip (model's own)"
    )
    p.add_argument("--animation-fps", type=float, default=None, help="clip frame rate (model's)")
    p.add_argument("--animation-steps", type=int, default=None, help="steps (--steps)")
    p.add_argument(
        "--animation-fit",
        choices=("pingpong", "stretch"),
        default="pingpong",
        help="fit a clip to its segment: play forwards and back at its own speed (default), "
        "or stretch it once over the segment",
    )
    p.add_argument(
        "--melody-library",
        type=Path,
        default=None,
        help="music library folder: each segment's melody is the clip whose music best "
        "matches that segment's EEG (music-supervised encoder trained on the session's "
        "listening blocks); needs the audio tagger in the models folder",
    )
    p.add_argument(
        "--melody-mix",
        type=float,
        default=1.0,
        help="weight of the library clip against the participant's melody, 0-1 (1: the clip)",
    )
    p.add_argument("--control", action="store_true", help="also the reordered control video")
    p.add_argument("--control-seed", type=int, default=1, help="seed of the control order")
    p.add_argument("--no-evaluate", action="store_true", help="skip CLIP/CLAP scores")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_progress_option(p)


def config_from_args(args: argparse.Namespace) -> GenerateConfig:
    """The :class:`GenerateConfig` the options ask for (one-line errors for bad values)."""
    from data_schema.errors import RecallLabError
    from generation.animation import AnimationSettings
    from generation.images import ImageSettings, check_transition
    from generation.music import MusicSettings
    from generation.pipeline import GenerateConfig
    from generation.segments import SegmentRules

    if args.steps < 1:
        raise RecallLabError("--steps must be at least 1")
    if args.fps <= 0:
        raise RecallLabError("--fps must be positive")
    if args.transition < 0:
        raise RecallLabError("--transition must be 0 or more seconds")
    check_transition(args.transition_mode, args.morph_steps)
    cfg = GenerateConfig(
        affect=args.affect,
        memory=getattr(args, "memory", None),
        out=getattr(args, "out", None),
        models=args.models,
        seed=args.seed,
        fps=args.fps,
        transition=args.transition,
        transition_mode=args.transition_mode,
        duration=args.duration,
        control=args.control,
        control_seed=args.control_seed,
        evaluate=not args.no_evaluate,
        device=args.device,
        lexicon=args.lexicon,
        segment_rules=SegmentRules(min_duration=args.min_segment, smoothing=args.smoothing),
        music=MusicSettings(
            window=args.window,
            overlap=args.overlap,
            crossfade=args.crossfade,
            join=args.music_join,
        ),
        music_backend=args.music_backend,
        images=ImageSettings(steps=args.steps, morph_steps=args.morph_steps),
        animation=AnimationSettings(
            choice=args.animation,
            frames=args.animation_frames,
            fps=args.animation_fps,
            steps=args.animation_steps,
            fit=args.animation_fit,
        ),
        show_progress=not args.quiet,
        melody_library=getattr(args, "melody_library", None),
        melody_mix=getattr(args, "melody_mix", 1.0),
    )
    return cfg


def run(args: argparse.Namespace) -> int:
    from generation.pipeline import run_generation

    cfg = config_from_args(args)
    progress = progress_from_args(args)
    with progress.cancellable():
        results = run_generation(args.session, cfg, progress=progress)
    for r in results:
        segs = r.manifest["segments"]
        affects = " ".join(f"{s['affect'][:3]}:{s['duration']:.1f}s" for s in segs)
        print(f"memory {r.memory}: {r.video} ({r.manifest['total_seconds']:.1f} s; {affects})")
        if r.manifest["animation"]:
            a = r.manifest["animation"]
            print(f"  animated with {a['model']}: {a['frames']} frames at {a['fps']:g} fps")
        if r.control_video is not None:
            print(f"  control (reordered {r.manifest['control']['order']}): {r.control_video}")
        for note in r.manifest["notes"]:
            print(f"  note: {note}")
    return 0
