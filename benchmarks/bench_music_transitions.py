"""Benchmark: how abrupt the music is at segment boundaries, per way of joining segments.

One memory (four affect segments: positive, neutral, negative, positive, each with its own
music prompt, the same hummed melody) is generated three ways with the same seeds: a *hard
cut* (separately generated clips laid end to end), a *crossfade* (the same clips with 1 s
equal-power crossfades, ``--music-join crossfade``) and a *continuation* chain (each segment
prompted with the codec codes of the last ``--overlap`` seconds of the one before it,
``--music-join continue``, the default). At every boundary the spectral flux (distance between
the magnitude spectra of the 32 ms before and after it, relative to their mean norm) and the
sample-to-sample jump are compared with their medians inside the segments; the figures to
read are these ratios and their ratio to the hard cut's.

Without ``--models`` the tiny random MusicGen-melody is used (its output is noise, so only the
mechanics are measured); with a models folder holding ``musicgen-melody/``, the real model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _util import fmt, machine_info, print_table, update_results

AREA = "generation"
SECTION = "transitions_music"
PROMPTS = [
    "a warm bright upbeat melody, joyful, major key",
    "a calm ambient piece",
    "a slow dark melancholic piece, minor key, sad",
    "a light playful tune, hopeful",
]


def hum(seconds: float, rate: int = 16000):
    """A hummed-like guiding melody: a few notes of a major scale."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    notes = 261.63 * 2 ** (np.array([0, 2, 4, 5, 7, 5, 4, 2]) / 12)
    f = notes[(t / (seconds / len(notes))).astype(int).clip(0, len(notes) - 1)]
    return (0.3 * np.sin(2 * np.pi * np.cumsum(f) / rate)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=Path, default=None, help="models folder (default: tiny)")
    p.add_argument(
        "--segment", type=float, default=None, help="seconds per segment (tiny 2, real 8)"
    )
    p.add_argument(
        "--overlap", type=float, default=None, help="continuation prompt, s (tiny 1, real 10)"
    )
    p.add_argument("--crossfade", type=float, default=1.0, help="crossfade, s (1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--results-dir", default=None, help="where results go (benchmarks/results)")
    p.add_argument("--note", default="", help="note stored with the results")
    args = p.parse_args(argv)

    import numpy as np

    from app.cli import main as cli
    from generation.models import is_tiny, pick_device
    from generation.music import (
        MusicGenerator,
        MusicPart,
        MusicSettings,
        boundary_transitions,
        equal_power_join,
        normalize_loudness,
    )

    machine = machine_info(args.note)
    with tempfile.TemporaryDirectory() as tmp:
        models = args.models
        if models is None:
            models = Path(tmp) / "models"
            assert cli(["models", "make-tiny", str(models), "--only", "musicgen-melody"]) == 0
        folder = models / "musicgen-melody"
        tiny = is_tiny(folder)
        seg = args.segment or (2.0 if tiny else 8.0)
        overlap = args.overlap or (1.0 if tiny else 10.0)
        device = pick_device(args.device)
        music = MusicGenerator(folder, device)
        rate = music.sampling_rate
        durations = [seg] * len(PROMPTS)
        melody = hum(sum(durations))
        parts = [MusicPart(pr, seg, melody, 16000, i * seg, i) for i, pr in enumerate(PROMPTS)]
        settings = MusicSettings(overlap=overlap, crossfade=args.crossfade)
        t0 = time.perf_counter()
        chain = music.generate_chain(parts, settings)
        t_chain = time.perf_counter() - t0
        t0 = time.perf_counter()
        clips = [music.generate_part(x, settings, extra=args.crossfade)[0] for x in parts]
        t_clips = time.perf_counter() - t0
    bounds = [float(b) for b in np.cumsum(durations)[:-1]]
    tracks = {
        "cut": np.concatenate([c[: round(seg * rate)] for c in clips]),
        "crossfade": equal_power_join(clips, durations, rate, args.crossfade),
        "continue": chain.track,
    }
    m = {k: boundary_transitions(normalize_loudness(v), rate, bounds) for k, v in tracks.items()}
    figures: dict = {
        "model": "tiny random" if tiny else str(folder),
        "device": device.name,
        "segments": len(PROMPTS),
        "segment_s": seg,
        "overlap_s": overlap,
        "crossfade_s": args.crossfade,
        "sample_rate": rate,
        "samples": {k: len(v) for k, v in tracks.items()},
        "generate_s": {"continue": round(t_chain, 2), "clips_with_tails": round(t_clips, 2)},
    }
    table = [("memory", f"{len(PROMPTS)} segments x {seg:g} s", figures["model"])]
    cut_max = max(m["cut"]["flux_ratio"])
    cut_med = float(np.median(m["cut"]["flux_ratio"]))
    for k in ("cut", "crossfade", "continue"):
        fr, jr = m[k]["flux_ratio"], m[k]["jump_ratio"]
        f = {
            "flux": [round(v, 5) for v in m[k]["flux"]],
            "flux_ratio_to_within": [round(v, 3) for v in fr],
            "flux_ratio_max": round(max(fr), 3),
            "flux_ratio_median": round(float(np.median(fr)), 3),
            "flux_max_vs_cut": round(max(fr) / cut_max, 3),
            "flux_median_vs_cut": round(float(np.median(fr)) / cut_med, 3),
            "jump_ratio_to_within": [round(v, 3) for v in jr],
            "jump_ratio_max": round(max(jr), 3),
        }
        figures[k] = f
        table.append(
            (
                f"{k}: flux at boundary / inside",
                f"max {fmt(f['flux_ratio_max'])}, median {fmt(f['flux_ratio_median'])}",
                f"vs hard cut: max x{fmt(f['flux_max_vs_cut'])}, "
                f"median x{fmt(f['flux_median_vs_cut'])}; sample jump / inside max "
                f"{fmt(f['jump_ratio_max'])}",
            )
        )
    table.append(
        (
            "generation time",
            f"continue {fmt(t_chain)} s, clips {fmt(t_clips)} s",
            "continuation re-encodes the prompt; clips carry crossfade tails",
        )
    )
    print_table("Music at segment boundaries: cut, crossfade, continuation", table)
    out = update_results(
        AREA,
        SECTION,
        figures,
        table,
        title="Music at segment boundaries: hard cut, crossfade, continuation",
        summary=__doc__.split("\n\n")[1].replace("\n", " "),
        machine=machine,
        **({"results_dir": args.results_dir} if args.results_dir else {}),
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
