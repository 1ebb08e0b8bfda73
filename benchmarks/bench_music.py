"""Benchmark: training the music-supervised encoder for one participant on this machine.

One simulated participant in DEAP's shape (``--clips`` listening trials of ``--clip-seconds``,
32 channels at 128 Hz; ``recall-lab simulate --listening``) is read, preprocessed and cut into
3 s differential-entropy windows (the ``music`` preset); the library's clips are embedded by
the audio tagger (the tiny random AST: the real one's 768-d embeddings cost more, and its
weights are not on this machine); then the encoder is fitted once on every window with the
paper's settings (LSTM 128/256, Adam 1e-4, at most ``--epochs`` epochs, early stopping with
patience 15). Beside it, in the same run and on the same windows, the two peers the decode
report puts next to it: the band-power logistic regression (on the same DE features) and
CEBRA-Behavior with kNN at the default 300 iterations. The projection multiplies the measured
fit time by the fits of an honest evaluation (one per held-out clip, and per permutation).

Run ``python benchmarks/bench_music.py`` (about 10 minutes on 2 cores) or with fewer
``--clips`` / ``--epochs`` for a quick check.
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

AREA = "music"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=40, help="listening trials (40, as DEAP)")
    p.add_argument("--clip-seconds", type=float, default=60.0, help="seconds per clip (60)")
    p.add_argument("--epochs", type=int, default=200, help="max epochs (200, the paper's)")
    p.add_argument("--results-dir", default=None, help="where results go (benchmarks/results)")
    p.add_argument("--note", default="", help="note stored with the results")
    args = p.parse_args(argv)

    import numpy as np

    from app.cli import main as cli
    from decoding.config import load_config
    from decoding.decoders import make_decoder
    from decoding.evaluation import fit_representation
    from decoding.pipeline import add_music, build_dataset, load_session_windows

    machine = machine_info(args.note)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        session = tmp / "p01.h5"
        seconds = 30 + args.clips * (args.clip_seconds + 4) + 60
        t0 = time.perf_counter()
        sim = ["simulate", "--out", str(session), "--listening", "--clips", str(args.clips)]
        sim += ["--clip-seconds", str(args.clip_seconds), "--duration", str(seconds)]
        rc = cli([*sim, "--channels", "32", "--rate", "128", "--effect", "0.5"])
        assert rc == 0
        t_sim = time.perf_counter() - t0
        models = tmp / "models"
        assert cli(["models", "make-tiny", str(models), "--only", "audio-tagger"]) == 0

        cfg = load_config(preset="music")
        cfg.music.models = str(models)
        cfg.music_supervised.max_epochs = args.epochs
        t0 = time.perf_counter()
        sw = load_session_windows(session, cfg)
        t_windows = time.perf_counter() - t0
        ds = build_dataset([sw], cfg)
        t0 = time.perf_counter()
        add_music(ds, [sw], cfg)
        t_music = time.perf_counter() - t0
        rows = np.arange(len(ds.y))

        def fit(name: str):
            dec = make_decoder(name, cfg, 0)
            t = time.perf_counter()
            fit_representation(dec, ds, rows, ds.y)
            dec.fit_readout(dec.transform(ds.X), ds.y)
            return dec, time.perf_counter() - t

        ms, t_ms = fit("music_supervised")
        _, t_lr = fit("bandpower_logreg")
        _, t_cebra = fit("cebra_behavior_knn")

    epochs = len(ms.loss_history)
    n = len(ds.y)
    evaluation_fits = args.clips * (1 + cfg.evaluation.n_permutations_refit)
    projected_h = evaluation_fits * t_ms / 3600
    figures = {
        "clips": args.clips,
        "clip_seconds": args.clip_seconds,
        "windows": n,
        "features": int(ds.X.shape[1]),
        "simulate_s": round(t_sim, 2),
        "preprocess_and_de_s": round(t_windows, 2),
        "tagger_embedding_s": round(t_music, 2),
        "music_supervised_fit_s": round(t_ms, 2),
        "music_supervised_epochs": epochs,
        "music_supervised_best_epoch": getattr(ms, "best_epoch", None),
        "seconds_per_epoch": round(t_ms / max(epochs, 1), 3),
        "bandpower_logreg_fit_s": round(t_lr, 3),
        "cebra_behavior_knn_fit_s": round(t_cebra, 2),
        "ratio_to_cebra": round(t_ms / t_cebra, 2),
        "ratio_to_logreg": round(t_ms / t_lr, 1),
        "evaluation_fits": evaluation_fits,
        "evaluation_projected_h": round(projected_h, 2),
        "device": getattr(ms, "device", "cpu"),
    }
    table = [
        (
            "participant",
            f"{args.clips} clips x {args.clip_seconds:g} s, 32 ch, 128 Hz",
            "DEAP's shape",
        ),
        ("windows", f"{n} x {ds.X.shape[1]} features", "3 s DE windows every 1 s inside clips"),
        ("preprocess + DE", f"{fmt(t_windows)} s", "read, MNE preprocessing, DE features"),
        ("tagger embeddings", f"{fmt(t_music)} s", "tiny random AST (the real one costs more)"),
        (
            "music_supervised fit",
            f"{fmt(t_ms)} s ({epochs} epochs, {fmt(t_ms / max(epochs, 1), 3)} s/epoch)",
            f"paper settings, at most {args.epochs} epochs, early stopping (patience 15)",
        ),
        (
            "cebra_behavior_knn fit",
            f"{fmt(t_cebra)} s",
            "peer: CEBRA-Behavior 300 iterations + kNN",
        ),
        ("bandpower_logreg fit", f"{fmt(t_lr, 3)} s", "peer: logistic regression, same features"),
        ("ratio to CEBRA", fmt(t_ms / t_cebra), "music_supervised / cebra_behavior_knn, same run"),
        (
            "honest evaluation, projected",
            f"{fmt(projected_h)} h",
            f"{evaluation_fits} fits: one per held-out clip x (1 + "
            f"{cfg.evaluation.n_permutations_refit} permutation refits), one core",
        ),
    ]
    print_table("Music-supervised encoder: training one participant", table)
    out = update_results(
        AREA,
        "train",
        figures,
        table,
        title="Training the music-supervised encoder for one participant",
        summary=__doc__.split("\n\n")[1].replace("\n", " "),
        machine=machine,
        **({"results_dir": args.results_dir} if args.results_dir else {}),
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
