"""The report folder of a decode run: plots, metrics, configuration, models, embeddings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.progress import Progress, run_folder
from data_schema.versions import software_versions
from decoding.labels import VALENCE_CLASSES, ClassSet

if TYPE_CHECKING:
    from decoding.config import DecodeConfig
    from decoding.pipeline import DecodeOutcome

COLOURS = {-1: "tab:blue", 0: "0.7", 1: "tab:red"}  # valence classes


def _colour(classes: ClassSet, code: int) -> str:
    """Valence keeps its colours; other class sets take matplotlib's tab10 in code order."""
    if classes.target == "valence":
        return COLOURS[code]
    return f"C{classes.codes.index(code) % 10}"


def _classes(outcome) -> ClassSet:
    first = next(iter(outcome.results.values()), None)
    return first.classes if first is not None else VALENCE_CLASSES


def write_report(
    outcome: DecodeOutcome, cfg: DecodeConfig, root: Path, progress: Progress | None = None
) -> Path:
    """Write plots and files for ``outcome`` into a new ``root/run-NNN``; returns the folder.

    The folder appears only complete (:func:`data_schema.progress.run_folder`)."""
    try:
        with run_folder(root, progress) as folder:
            _write_report(outcome, cfg, folder.partial)
    except OSError as exc:
        raise RecallLabError(f"cannot write the report into {root}: {exc}") from None
    return folder.final


def _write_report(outcome: DecodeOutcome, cfg: DecodeConfig, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from decoding.pipeline import strict_json

    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    metrics = {n: _metrics(r) for n, r in outcome.results.items()}
    (out / "metrics.json").write_text(strict_json(metrics))
    (out / "summary.json").write_text(strict_json(outcome.summary))
    (out / "software_versions.json").write_text(json.dumps(software_versions(), indent=2))
    if outcome.consistency:
        (out / "consistency.json").write_text(json.dumps(outcome.consistency, indent=2))

    y = np.concatenate([s.y for s in outcome.sessions])
    for name, r in outcome.results.items():
        if r.leaky_representation is not None:
            r.leaky_representation.save(out / "model_all_data")
        if r.leaky_embedding is not None and name.startswith("cebra"):
            np.savez_compressed(
                out / f"embedding_{name}.npz",
                embedding=r.leaky_embedding,
                label=y,
                times=np.concatenate([s.times for s in outcome.sessions]),
            )
    _plot_embeddings(plt, outcome, y, out, _classes(outcome))
    _plot_trajectories(plt, outcome, cfg.decoders[0], out)
    _plot_confusions(plt, outcome, out)
    _plot_loss(plt, outcome, out)
    _plot_consistency(plt, outcome, out)
    (out / "README.md").write_text(_summary_markdown(outcome))


def _metrics(r) -> dict:
    """A decoder's metrics; chance and p-values are None when no permutation was run."""
    m = r.metrics()
    if not r.null_f1:
        for key in m:
            if key.startswith(("chance_", "p_value")):
                m[key] = None
    return m


def _fmt(value: float | None, missing: str = "not computed") -> str:
    return missing if value is None or not np.isfinite(value) else f"{value:.3f}"


def _chance(r) -> tuple[str, str]:
    """Chance F1 and p as text (``not computed`` without permutations)."""
    if not r.null_f1:
        return "not computed", "not computed"
    return _fmt(r.chance_f1), _fmt(r.p_value)


def _plot_embeddings(plt, outcome, y, out: Path, classes: ClassSet) -> None:
    for name, r in outcome.results.items():
        z = r.leaky_embedding
        if z is None or not name.startswith("cebra") or z.shape[1] < 2:
            continue
        fig = plt.figure(figsize=(6, 5))
        ax = fig.add_subplot(projection="3d" if z.shape[1] >= 3 else None)
        for c in classes.codes:
            sel = y == c
            coords = [z[sel, 0], z[sel, 1], *([z[sel, 2]] if z.shape[1] >= 3 else [])]
            ax.scatter(*coords, s=3, c=_colour(classes, c), label=classes.name_of(c))
        ax.set_title(f"{name}: embedding of all windows\n(fitted on all data: display only)")
        ax.legend(markerscale=4, fontsize=8)
        fig.savefig(out / f"embedding_{name}.png", dpi=110)
        plt.close(fig)


def _plot_trajectories(plt, outcome, primary: str, out: Path) -> None:
    r = outcome.results[primary]
    n = len(outcome.sessions)
    fig, axes = plt.subplots(n, 1, figsize=(11, 2.6 * n), squeeze=False)
    start = 0
    for ax, s in zip(axes[:, 0], outcome.sessions):
        sl = slice(start, start + len(s.y))
        start += len(s.y)
        p, fold = r.proba[sl], r.fold[sl]
        t = s.times - s.times[0]
        ok = fold >= 0
        if r.classes.target == "valence":
            val = np.where(ok, p[:, 2] - p[:, 0], np.nan)
            ax.fill_between(t, s.y, step="mid", color="0.85", label="reported (class)")
            ax.plot(t, val, lw=0.8, color="tab:purple", label=f"decoded ({primary}, out-of-fold)")
            ax.set_ylim(-1.1, 1.1)
            ax.set_ylabel("valence")
        else:
            # A class per window: the labelled one and the decoded one, on the class axis.
            codes = np.asarray(r.classes.codes)
            index = {c: i for i, c in enumerate(r.classes.codes)}
            reported = np.array([index[int(c)] for c in s.y], float)
            decoded = np.where(ok, np.nan_to_num(p).argmax(axis=1), np.nan)
            ax.step(t, reported, where="mid", color="0.6", lw=2, label="labelled")
            ax.plot(t, decoded, ".", ms=3, color="tab:purple", label=f"decoded ({primary})")
            ax.set_yticks(range(len(codes)), r.classes.names, fontsize=7)
            ax.set_ylim(-0.5, len(codes) - 0.5)
            ax.set_ylabel(r.classes.target)
        ax.set_title(f"session {s.session_id} ({s.participant_id})", fontsize=9)
    axes[-1, 0].set_xlabel("time since first window [s]")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "trajectory.png", dpi=110)
    plt.close(fig)


def _plot_confusions(plt, outcome, out: Path) -> None:
    names = list(outcome.results)
    grow = 0.6 * max(0, len(_classes(outcome)) - 3)  # room for five emotions' names
    fig, axes = plt.subplots(
        1, len(names), figsize=((4 + grow) * len(names), 3.8 + grow), squeeze=False
    )
    for ax, name in zip(axes[0], names):
        r = outcome.results[name]
        cm = np.asarray(r.confusion, float)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
        k = len(r.classes)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8)
        rotation = 0 if k <= 3 else 45
        ax.set_xticks(range(k), r.classes.names, fontsize=8, rotation=rotation)
        ax.set_yticks(range(k), r.classes.names, fontsize=8)
        ax.set_xlabel("decoded")
        ax.set_ylabel("reported")
        chance, p = _chance(r)
        ax.set_title(f"{name}\nF1 {r.f1:.2f} (chance {chance}, p={p})", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)


def _plot_loss(plt, outcome, out: Path) -> None:
    curves = {n: r.loss_history for n, r in outcome.results.items() if r.loss_history}
    if not curves:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, loss in curves.items():
        ax.plot(loss, lw=0.8, label=f"{name} (fold 1)")
    ax.set_xlabel("iteration")
    ax.set_ylabel("InfoNCE loss")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "training_loss.png", dpi=110)
    plt.close(fig)


def _plot_consistency(plt, outcome, out: Path) -> None:
    c = outcome.consistency
    if not c:
        return
    ids = c["ids"]
    n = len(ids)
    mat = np.full((n, n), np.nan)
    for (a, b), s in zip(c["pairs"], c["scores"]):
        mat[ids.index(a), ids.index(b)] = s
    fig, ax = plt.subplots(figsize=(4, 3.5))
    im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(n), [str(i) for i in ids])
    ax.set_yticks(range(n), [str(i) for i in ids])
    ax.set_title(f"CEBRA-Behavior consistency across runs\nmean R² {c['mean']:.2f}", fontsize=9)
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out / "consistency.png", dpi=110)
    plt.close(fig)


def _summary_markdown(outcome) -> str:
    lines = [
        "# Decoding report",
        "",
        f"Sessions: {', '.join(outcome.summary['session_ids'])}; windows: "
        f"{outcome.summary['n_windows']}; device: {outcome.summary['device']}",
        "",
        f"Classes ({_classes(outcome).target}): {', '.join(_classes(outcome).names)}",
        "",
        "| decoder | split | weighted F1 | balanced acc. | chance F1 | p | leaky F1 (RYM, LEAKY) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n, r in outcome.results.items():
        leaky = "-" if r.leaky_f1 is None else f"{r.leaky_f1:.3f}"
        chance, p = _chance(r)
        lines.append(
            f"| {n} | {r.split} | {r.f1:.3f} | {r.balanced_accuracy:.3f} | {chance} | "
            f"{p} | {leaky} |"
        )
    lines += [
        "",
        "| decoder | accuracy | balanced acc. | chance balanced acc. |",
        "| --- | --- | --- | --- |",
    ]
    for n, r in outcome.results.items():
        chance_bacc = _fmt(r.chance_balanced_accuracy) if r.null_f1 else "not computed"
        lines.append(f"| {n} | {_fmt(r.accuracy)} | {r.balanced_accuracy:.3f} | {chance_bacc} |")
    lines += [
        "",
        "Honest figures: representation and read-out fitted on training folds only; chance from",
        "circularly shifted labels. The leaky column fits the representation on all data with",
        "all labels (the RYM protocol) and is shown only for comparison.",
    ]
    return "\n".join(lines) + "\n"
