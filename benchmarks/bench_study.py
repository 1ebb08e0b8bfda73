"""Benchmark: decode a simulated 10-participant study serially, on 2 local Dask workers, and
through a scheduler with 2 workers on loopback; project the wall time for more workers.

Each participant is one ``recall-lab simulate`` session (``--seconds`` long, ``--channels`` at
``--rate``). The three runs decode copies of the same study with the same settings (the
``quick`` preset, CEBRA capped at ``--iterations``), and must give the same figures. The
projection for N workers schedules the measured per-participant compute times (longest first
onto the least-loaded worker) and adds the measured start-up overhead of a local cluster; it
assumes N free cores.

With ``--preset rym`` the study is decoded across participants (leave one participant out,
every EEG sample a CEBRA row, a multi-session leaky fit): one task per fit, ``--shifts``
permutation shifts; the table adds the projection to the published settings (2000 iterations,
19 shifts) from the measured fit times.

Run ``python benchmarks/bench_study.py`` (about 6 minutes on 2 cores) or with fewer
``--participants`` for a quick check; ``--preset rym`` takes about 20 minutes.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _util import fmt, machine_info, print_table, update_results

AREA = "study"  # its own results file: decoding.md is bench_decode.py's


def _fits(participants: int, shifts: int) -> int:
    """Fits of a rym-preset study: CEBRA-Behavior per held-out participant and shift, plus
    the leaky fit; CEBRA-Time once per participant plus the leaky fit."""
    return participants * (1 + shifts) + 1 + participants + 1


def _summary(root: Path) -> dict:
    return json.loads(
        next((root / "derivatives/decoding/runs").glob("run-*/summary.json")).read_text()
    )


def _figures(summary: dict) -> dict:
    return {
        s: {
            d: (m["f1_weighted"], m["p_value"], m.get("leaky_f1_weighted"))
            for d, m in r["decoders"].items()
        }
        for s, r in summary["participants"].items()
    }


def _decode(root: Path, config: Path, preset: str, *extra: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "app.cli", "study", "decode", str(root), "--preset", preset,
         "--config", str(config), "--quiet", *extra],
        check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )  # fmt: skip
    return time.perf_counter() - t0


def projected(tasks: list[float], workers: int, overhead: float) -> float:
    """Makespan of ``tasks`` on ``workers`` (longest first, least-loaded worker) + overhead."""
    loads = [0.0] * workers
    heapq.heapify(loads)
    for t in sorted(tasks, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + t)
    return max(loads) + overhead


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--participants", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=90.0, help="session length")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--rate", type=float, default=125.0)
    ap.add_argument("--iterations", type=int, default=50, help="CEBRA iterations per fit")
    ap.add_argument(
        "--preset", default="quick", help="quick (one task per participant) or rym (LOSO)"
    )
    ap.add_argument(
        "--shifts",
        type=int,
        default=4,
        help="permutation shifts with --preset rym (19 as published)",
    )
    ap.add_argument("--results-dir", type=Path, default=None)
    ap.add_argument("--note", default=os.environ.get("RECALL_LAB_BENCH_NOTE", ""))
    args = ap.parse_args(argv)

    from app.cli import main as cli
    from decoding.simulate import SimulationSettings, simulate_session

    machine = machine_info(args.note)
    work = Path(tempfile.mkdtemp(prefix="recall-lab-bench-study-"))
    try:
        study = work / "study"
        cli(["study", "init", str(study)])
        files = [
            simulate_session(
                work / f"p{i:02d}.h5",
                SimulationSettings(
                    seed=i,
                    participant_id=f"P{i:02d}",
                    duration=args.seconds,
                    n_channels=args.channels,
                    sfreq=args.rate,
                    effect=0.8,
                    recall=min(60.0, args.seconds / 3),
                    baseline=10.0,
                ),
            )
            for i in range(args.participants)
        ]
        cli(["study", "add", str(study), *map(str, files)])
        config = work / "bench.yaml"
        text = f"cebra:\n  max_iterations: {args.iterations}\n"
        if args.preset == "rym":
            # Across participants only: the within-participant figures are the quick
            # preset's per-participant tasks, measured without --preset rym.
            text += (
                f"evaluation:\n  n_permutations: {args.shifts}\n"
                f"  n_permutations_refit: {args.shifts}\n  within_participant: false\n"
            )
        config.write_text(text)
        runs = {}
        for name in ("serial", "local2", "loopback2"):
            shutil.copytree(study, work / name)
        runs["serial"] = _decode(work / "serial", config, args.preset, "--jobs", "1")
        runs["local2"] = _decode(work / "local2", config, args.preset, "--jobs", "2")
        dask = Path(sys.executable).parent / "dask"
        sched = work / "scheduler.json"
        procs = [subprocess.Popen(
            [str(dask), "scheduler", "--scheduler-file", str(sched), "--port", "0",
             "--host", "127.0.0.1", "--no-dashboard"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]  # fmt: skip
        try:
            while not sched.exists():
                time.sleep(0.2)
            procs += [subprocess.Popen(
                [str(dask), "worker", "--scheduler-file", str(sched), "--nworkers", "1",
                 "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for _ in range(2)]  # fmt: skip
            time.sleep(3.0)  # the workers join before the clock starts
            runs["loopback2"] = _decode(
                work / "loopback2", config, args.preset, "--scheduler-file", str(sched)
            )
        finally:
            for p in procs:
                p.terminate()
                p.wait(15)
        figures = {k: _figures(_summary(work / k)) for k in runs}
        same = figures["serial"] == figures["local2"] == figures["loopback2"]
        # The study's report, from the loopback run: init -> add -> decode -> report.
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "app.cli", "study", "report", str(work / "loopback2")],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        report_s = time.perf_counter() - t0
        page = next((work / "loopback2/derivatives/reports").glob("run-*/index.html")).read_text()
        side_by_side = "LEAKY" in page and "honest F1" in page
        serial = _summary(work / "serial")
        if args.preset == "rym":
            # One task per fit (held-out participant x shift, and the leaky fits).
            per_kind = serial["across_participants"]["task_seconds"]
            tasks = per_kind.get("fold_task", []) + per_kind.get("leaky_task", [])
            fits_full = _fits(args.participants, 19)
            fits_run = _fits(args.participants, args.shifts)
            # Fit time grows with iterations; the reading and pooling stay.
            full = sum(tasks) * fits_full / fits_run * 2000 / args.iterations
        else:
            tasks = [r["compute_seconds"] for r in serial["participants"].values()]
        overhead = max(0.0, runs["local2"] - projected(tasks, 2, 0.0))
        proj = {n: projected(tasks, n, overhead) for n in (4, 8, 16)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.participants
    what = (
        f"preset rym (leave one participant out, EEG samples, multi-session leaky fit), CEBRA "
        f"{args.iterations} iterations, {args.shifts} shifts; 2 decoders"
        if args.preset == "rym"
        else f"preset quick, CEBRA {args.iterations} iterations; 3 decoders, permutation chance"
    )
    table = [
        ("study", f"{n} participants", f"one simulated {args.seconds:g}-s session each, "
         f"{args.channels} ch at {args.rate:g} Hz; {what}"),
        ("serial (--jobs 1)", f"{fmt(runs['serial'], 1)} s", "wall time of the command"),
        ("2 local workers", f"{fmt(runs['local2'], 1)} s",
         f"speed-up {fmt(runs['serial'] / runs['local2'], 2)} x (includes starting the cluster)"),
        ("scheduler + 2 workers on loopback", f"{fmt(runs['loopback2'], 1)} s",
         f"speed-up {fmt(runs['serial'] / runs['loopback2'], 2)} x (workers already running)"),
        ("per-task compute" if args.preset == "rym" else "per-participant compute",
         f"{fmt(min(tasks), 1)}-{fmt(max(tasks), 1)} s",
         f"median {fmt(sorted(tasks)[len(tasks) // 2], 1)} s; sum {fmt(sum(tasks), 1)} s"),
        *(
            [("projected: as published, 1 / 16 / 64 workers",
              f"{fmt(full / 3600, 1)} / {fmt(full / 16 / 3600, 2)} / {fmt(full / 64 / 3600, 2)} h",
              f"{_fits(n, 19)} fits of 2000 iterations (19 shifts): the measured fit times "
              f"scaled by iterations and fits; 1 CPU core per worker")]
            if args.preset == "rym" else []
        ),
        ("projected: 4 / 8 / 16 workers",
         f"{fmt(proj[4], 1)} / {fmt(proj[8], 1)} / {fmt(proj[16], 1)} s",
         f"measured tasks scheduled longest first + {fmt(overhead, 1)} s start-up; needs that "
         "many free cores"),
        ("same figures in every run", "yes" if same else "NO", "F1 and p per participant"),
        ("study report", f"{fmt(report_s, 1)} s",
         "HTML + PNG from the loopback run; honest and LEAKY figures side by side: "
         + ("yes" if side_by_side else "NO")),
    ]  # fmt: skip
    print_table("Study decode: serial, local Dask, loopback scheduler", table)
    kwargs = {"results_dir": args.results_dir} if args.results_dir else {}
    out = update_results(
        AREA,
        "study" if args.preset == "quick" else f"study_{args.preset}",
        {"runs_s": runs, "tasks_s": tasks, "projected_s": proj, "same_figures": same,
         "participants": n, "preset": args.preset, "report_s": report_s,
         "report_side_by_side": side_by_side},
        table,
        title=f"A {n}-participant study decoded serially, on 2 local workers, on a loopback "
        f"scheduler (preset {args.preset})",
        summary=(
            "recall-lab study decode on a simulated study: "
            + (
                "one Dask task per fit (held-out participant x permutation shift, and the leaky "
                "fits), across participants. "
                if args.preset == "rym"
                else "one Dask task per participant. "
            )
            + "The same study is decoded three times; the figures must be identical. "
            "Projections for more workers schedule the measured task times."
        ),
        machine=machine,
        **kwargs,
    )  # fmt: skip
    print(f"\nwrote {out}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
