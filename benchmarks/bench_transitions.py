"""Picture change across segment boundaries with cut, crossfade and morph transitions.

One memory (the test suite's session: a description, a sketch, a hummed melody and valence keys
making positive, neutral and negative segments; or ``--session FILE``, e.g. one written by
``recall-lab simulate``) is reconstructed three times through ``recall-lab generate``, with
``--transition-mode cut``, ``crossfade`` and ``morph``, the same seed and the same models (tiny
random ones written by ``recall-lab models make-tiny`` unless ``--models`` names a folder of real
ones). The reconstruction and the reordered control are decoded from their MP4s and, at every
segment boundary, each step between consecutive frames across the transition window (plus one
frame either side) is measured: the CLIP image-embedding cosine distance (the models folder's
``clip/``, else the tiny CLIP) and the mean absolute pixel difference (0-255). Per mode: the
largest and the median step, and the ratio of the largest step to the cut's. With tiny random
models the pictures are noise: the figures measure the mechanics (how the change is spread
over the window), not visual quality.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _util import RESULTS_DIR, fmt, machine_info, print_table, update_results

AREA = "generation"
SECTION = "transitions_visual"
MODES = ("cut", "crossfade", "morph")


def decode(path: Path, size: int) -> np.ndarray:
    """Every frame of a square MP4 as uint8 ``(n, size, size, 3)``."""
    import subprocess

    from generation.video import ffmpeg_exe

    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3)


class ClipImages:
    """CLIP image embeddings (L2-normalised, float64) from a local CLIP folder."""

    def __init__(self, folder: Path):
        from transformers import CLIPImageProcessor, CLIPModel

        self.model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
        self.proc = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(frames), 32):
                x = self.proc(images=list(frames[i : i + 32]), return_tensors="pt")
                e = self.model.get_image_features(pixel_values=x["pixel_values"])
                out.append(np.asarray(getattr(e, "pooler_output", e), dtype=np.float64))
        e = np.concatenate(out)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def boundary_steps(frames, starts, total, fps, transition, embed) -> dict[str, list[float]]:
    """Frame-to-frame change across each boundary's window (one frame beyond each side)."""
    t = (np.arange(len(frames)) + 0.5) / fps
    ends = [*starts[1:], total]
    dur = [e - s for s, e in zip(starts, ends, strict=True)]
    pixel, clip = [], []
    for j, b in enumerate(starts[1:]):
        half = min(transition / 2, dur[j] / 2, dur[j + 1] / 2)
        idx = np.flatnonzero(np.abs(t - b) < half + 1.0 / fps)
        if len(idx) < 2:  # a cut: the two frames either side of the boundary
            k = int(np.searchsorted(t, b))
            idx = np.array([k - 1, k])
        win = frames[idx].astype(np.float64)
        pixel += np.abs(np.diff(win, axis=0)).mean(axis=(1, 2, 3)).tolist()
        e = embed(frames[idx])
        clip += (1.0 - np.sum(e[1:] * e[:-1], axis=1)).clip(0, None).tolist()
    return {"pixel": pixel, "clip": clip}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, default=None, help="models folder (tiny ones if none)")
    p.add_argument("--session", type=Path, default=None, help="session file (a test session)")
    p.add_argument("--memory", default=None, help="memory id (the session's first)")
    p.add_argument("--steps", type=int, default=2, help="diffusion steps (2)")
    p.add_argument("--fps", type=float, default=24.0, help="video frame rate (24)")
    p.add_argument("--transition", type=float, default=1.0, help="window, s (1)")
    p.add_argument("--morph-steps", type=int, default=4, help="in-betweens per boundary (4)")
    p.add_argument("--duration", type=float, default=12.0, help="timeline, s (12)")
    p.add_argument("--animation", default="none", help="animation model (none)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (cpu)")
    p.add_argument("--results-dir", type=Path, default=None, help="where results go")
    p.add_argument("--note", default="", help="note stored with the results")
    args = p.parse_args(argv)

    from app.cli import main as cli

    machine = machine_info(args.note)
    results_dir = args.results_dir or RESULTS_DIR
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = args.models
        if models is None:
            models = tmp / "models"
            for key in ("stable-diffusion", "controlnet-scribble", "musicgen-melody", "clip"):
                assert cli(["models", "make-tiny", str(models), "--only", key]) == 0
        clip_folder = models / "clip"
        if not clip_folder.is_dir():
            clip_folder = tmp / "clip-models" / "clip"
            assert cli(["models", "make-tiny", str(clip_folder.parent), "--only", "clip"]) == 0
        session = args.session
        if session is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            from test_generation_helpers import write_session

            session = write_session(tmp / "memory.h5", recall=15.0)
        embed = ClipImages(clip_folder)
        for mode in MODES:
            out = tmp / f"gen-{mode}"
            cmd = ["generate", str(session), "--models", str(models), "--out", str(out)]
            cmd += ["--steps", str(args.steps), "--fps", str(args.fps), "--quiet"]
            cmd += ["--transition", str(args.transition), "--transition-mode", mode]
            cmd += ["--morph-steps", str(args.morph_steps), "--duration", str(args.duration)]
            cmd += ["--min-segment", "2", "--control", "--no-evaluate"]
            cmd += ["--animation", args.animation, "--device", args.device, "--seed", "0"]
            if args.memory:
                cmd += ["--memory", args.memory]
            t0 = time.perf_counter()
            assert cli(cmd) == 0, f"generate --transition-mode {mode} failed"
            wall = time.perf_counter() - t0
            manifest_path = next((out / "run-001").glob("*/manifest.json"))
            manifest = json.loads(manifest_path.read_text())
            size = int(_width(manifest_path.parent / manifest["segments"][0]["keyframe"]))
            steps = {"pixel": [], "clip": []}
            n_frames = []
            for video, segs in (
                ("reconstruction.mp4", manifest["segments"]),
                ("control_reordered.mp4", manifest["control"]["segments"]),
            ):
                frames = decode(manifest_path.parent / video, size)
                n_frames.append(len(frames))
                got = boundary_steps(
                    frames,
                    [s["start"] for s in segs],
                    manifest["total_seconds"],
                    args.fps,
                    args.transition,
                    embed,
                )
                for k in steps:
                    steps[k] += got[k]
            runs[mode] = {
                "frames": n_frames,
                "boundaries": 2 * (len(manifest["segments"]) - 1),
                "steps_measured": len(steps["pixel"]),
                "pixel_max": float(np.max(steps["pixel"])),
                "pixel_median": float(np.median(steps["pixel"])),
                "clip_max": float(np.max(steps["clip"])),
                "clip_median": float(np.median(steps["clip"])),
                "image_stage_s": round(
                    manifest["timings_s"]["images"] + manifest["timings_s"].get("transitions", 0),
                    2,
                ),
                "generate_wall_s": round(wall, 2),
                "segments": [s["affect"] for s in manifest["segments"]],
                "control_order": manifest["control"]["order"],
                "inbetween_pairs": sorted(manifest["transitions"]["inbetweens"]),
            }
        tiny = bool(args.models is None)
    cut = runs["cut"]
    for r in runs.values():
        for k in ("pixel", "clip"):
            base = cut[f"{k}_max"]
            r[f"{k}_max_ratio_to_cut"] = r[f"{k}_max"] / base if base > 0 else float("nan")
    assert len({tuple(r["frames"]) for r in runs.values()}) == 1, "frame counts differ"
    figures = {
        "models": "tiny random (make-tiny)" if tiny else str(args.models),
        "steps": args.steps,
        "fps": args.fps,
        "transition_s": args.transition,
        "morph_steps": args.morph_steps,
        "duration_s": args.duration,
        "animation": args.animation,
        "modes": runs,
    }
    table = [
        (
            "memory",
            f"{len(cut['segments'])} segments ({', '.join(cut['segments'])}), control order "
            f"{cut['control_order']}",
            f"{cut['boundaries']} boundaries in the reconstruction and the control; "
            f"{cut['frames'][0]} frames each in every mode",
        )
    ]
    for mode, r in runs.items():
        table.append(
            (
                f"{mode}: largest step, pixels / CLIP",
                f"{fmt(r['pixel_max'])} / {fmt(r['clip_max'], 5)}",
                f"x{fmt(r['pixel_max_ratio_to_cut'])} / x{fmt(r['clip_max_ratio_to_cut'])} "
                "the cut's",
            )
        )
        table.append(
            (
                f"{mode}: median step, pixels / CLIP",
                f"{fmt(r['pixel_median'])} / {fmt(r['clip_median'], 5)}",
                f"over {r['steps_measured']} frame steps in the windows",
            )
        )
        table.append(
            (
                f"{mode}: keyframes + in-betweens",
                f"{fmt(r['image_stage_s'])} s",
                f"{len(r['inbetween_pairs'])} boundary pairs painted"
                if mode == "morph"
                else "keyframes only",
            )
        )
    print_table("Transitions across segment boundaries", table)
    _keep_device_table(results_dir)
    out = update_results(
        AREA,
        SECTION,
        figures,
        table,
        title="Transitions across segment boundaries: cut, crossfade, morph",
        summary=" ".join(__doc__.split("\n\n")[1].split())
        + (" Models: tiny random." if tiny else f" Models: {args.models}."),
        machine=machine,
        results_dir=results_dir,
    )
    print(f"wrote {out}")
    if args.results_dir is None:  # the committed results: rebuild docs/benchmarks.md
        from run_all import build_docs

        print(f"wrote {build_docs()}")
    return 0


def _width(path: Path) -> int:
    """Width of a (square) keyframe PNG."""
    from PIL import Image

    with Image.open(path) as im:
        return im.size[0]


def _keep_device_table(results_dir: Path) -> None:
    """Keep ``bench_generate.py``'s per-device table in ``generation.md``: that script stores
    its figures by device, outside ``sections``, so its table is kept as the area's preface."""
    path = Path(results_dir) / f"{AREA}.json"
    if not path.exists():
        return
    from bench_generate import devices, markdown_table

    doc = json.loads(path.read_text())
    if devices(doc):
        doc["preface_markdown"] = markdown_table(doc)
        path.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
