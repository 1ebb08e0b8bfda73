"""Benchmark of ``recall-lab decode``: speed, memory, F1 against effect size, null calibration.

Run ``python benchmarks/bench_decode.py [--part speed|effect|null|all]``. Prints the figures and
writes them to ``benchmarks/results/decoding.json`` and ``benchmarks/results/decoding.md``
(parts not run keep their previous figures).

- speed: a 10-minute, 32-channel, 500 Hz simulated session decoded with the default settings
  by the real command line in a subprocess; wall time and peak resident memory (the child's
  ``ru_maxrss``), with the machine's load average noted. On a CUDA machine CEBRA trains there.
- effect: honest weighted F1 and balanced accuracy against the simulated effect size.
- null: fraction of null sessions (effect 0) whose permutation p-value exceeds 0.05.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"


def _load() -> dict:
    p = RESULTS / "decoding.json"
    return json.loads(p.read_text()) if p.exists() else {}


def bench_speed(tmp: Path) -> dict:
    from decoding.simulate import SimulationSettings, simulate_session

    session = simulate_session(
        tmp / "speed.h5", SimulationSettings(effect=0.5, duration=600, n_channels=32, sfreq=500)
    )
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "decode", str(session), "--json", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"decode failed: {proc.stderr.strip().splitlines()[-1]}")
    summary = json.loads(proc.stdout)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "session": "simulated, 600 s, 32 channels, 500 Hz, effect 0.5",
        "settings": "defaults (3 decoders, 5 blocks, 99/19 permutations, 300 CEBRA iterations)",
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(peak_mb, 1),
        "device": summary["device"],
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "decoders": summary["decoders"],
        "gpu_speedup": "not measured: no GPU machine in this session",
    }


def _quick_config(refit_permutations: int):
    from decoding.config import DecodeConfig

    cfg = DecodeConfig()
    cfg.cebra.consistency_runs = 0
    cfg.evaluation.n_permutations = 39
    cfg.evaluation.n_permutations_refit = refit_permutations
    return cfg


def bench_effect(tmp: Path, effects=(0.0, 0.3, 0.6, 1.0), seeds=(11,)) -> dict:
    from decoding.pipeline import decode_sessions
    from decoding.simulate import SimulationSettings, simulate_session

    rows = []
    for effect in effects:
        for seed in seeds:
            s = SimulationSettings(effect=effect, seed=seed, duration=300, n_channels=16, sfreq=250)
            path = simulate_session(tmp / f"effect-{effect}-{seed}.h5", s)
            out = decode_sessions([path], _quick_config(0), write=False, report=False)
            for name, m in out.summary["decoders"].items():
                rows.append(
                    {
                        "effect": effect,
                        "seed": seed,
                        "decoder": name,
                        "f1_weighted": round(m["f1_weighted"], 3),
                        "balanced_accuracy": round(m["balanced_accuracy"], 3),
                        "chance_f1_weighted": m["chance_f1_weighted"],
                        "p_value": m["p_value"],
                        "leaky_f1_weighted": round(m["leaky_f1_weighted"], 3),
                    }
                )
                print(rows[-1], flush=True)
    return {
        "session": "simulated, 300 s, 16 channels, 250 Hz",
        "note": "cebra_behavior_knn without permutations here (chance NaN) to keep it short",
        "rows": rows,
    }


def bench_null(tmp: Path, n_seeds: int = 20) -> dict:
    from decoding.pipeline import decode_sessions
    from decoding.simulate import SimulationSettings, simulate_session

    cfg = _quick_config(0)
    cfg.decoders = ["bandpower_logreg", "cebra_time_knn"]
    pvals: dict[str, list[float]] = {n: [] for n in cfg.decoders}
    for seed in range(100, 100 + n_seeds):
        s = SimulationSettings(effect=0.0, seed=seed, duration=150, n_channels=8, sfreq=250)
        path = simulate_session(tmp / f"null-{seed}.h5", s)
        cfg.evaluation.seed = seed  # independent permutations per null session
        out = decode_sessions([path], cfg, write=False, report=False)
        for name, m in out.summary["decoders"].items():
            pvals[name].append(m["p_value"])
        print(seed, {n: v[-1] for n, v in pvals.items()}, flush=True)
    return {
        "session": "simulated null (effect 0), 150 s, 8 channels, 250 Hz",
        "n_seeds": n_seeds,
        "n_permutations": cfg.evaluation.n_permutations,
        "fraction_p_above_0.05": {n: sum(p > 0.05 for p in v) / len(v) for n, v in pvals.items()},
        "p_values": pvals,
    }


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def _markdown(res: dict) -> str:
    lines = ["# Decoding benchmark", ""]
    sp = res.get("speed")
    if sp:
        lines += [
            "## Speed (default settings, `recall-lab decode`)",
            "",
            "| session | wall [s] | peak RSS [MB] | device | CPUs | load avg before/after |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {sp['session']} | {sp['wall_s']} | {sp['peak_rss_mb']} | {sp['device']} | "
            f"{sp['cpu_count']} | {sp['load_average_before'][0]} / {sp['load_average_after'][0]} |",
            "",
            f"GPU speed-up: {sp['gpu_speedup']}.",
            "",
            "| decoder | F1 | bal. acc. | chance F1 | p | leaky F1 (LEAKY) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for n, m in sp["decoders"].items():
            lines.append(
                f"| {n} | {m['f1_weighted']:.3f} | {m['balanced_accuracy']:.3f} | "
                f"{m['chance_f1_weighted']:.3f} | {m['p_value']:.3f} | "
                f"{m['leaky_f1_weighted']:.3f} |"
            )
        lines.append("")
    ef = res.get("effect")
    if ef:
        lines += [
            f"## Honest F1 against effect size ({ef['session']})",
            "",
            "| effect | decoder | F1 (mean of seeds) | bal. acc. | leaky F1 (LEAKY) |",
            "| --- | --- | --- | --- | --- |",
        ]
        keys = sorted({(r["effect"], r["decoder"]) for r in ef["rows"]})
        for effect, dec in keys:
            rs = [r for r in ef["rows"] if r["effect"] == effect and r["decoder"] == dec]
            lines.append(
                f"| {effect} | {dec} | {_mean(rs, 'f1_weighted'):.3f} | "
                f"{_mean(rs, 'balanced_accuracy'):.3f} | {_mean(rs, 'leaky_f1_weighted'):.3f} |"
            )
        lines.append("")
    nu = res.get("null")
    if nu:
        lines += [
            f"## Null calibration ({nu['session']}, {nu['n_seeds']} seeds)",
            "",
            "| decoder | fraction of seeds with p > 0.05 |",
            "| --- | --- |",
        ]
        for n, f in nu["fraction_p_above_0.05"].items():
            lines.append(f"| {n} | {f:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["speed", "effect", "null", "all"], default="all")
    ap.add_argument("--null-seeds", type=int, default=20)
    args = ap.parse_args()
    res = _load()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.part in ("speed", "all"):
            res["speed"] = bench_speed(tmp)
            print(json.dumps(res["speed"], indent=2), flush=True)
        if args.part in ("effect", "all"):
            res["effect"] = bench_effect(tmp)
        if args.part in ("null", "all"):
            res["null"] = bench_null(tmp, args.null_seeds)
            print(json.dumps(res["null"]["fraction_p_above_0.05"]), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "decoding.json").write_text(json.dumps(res, indent=2, default=float))
    md = _markdown(res)
    (RESULTS / "decoding.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
