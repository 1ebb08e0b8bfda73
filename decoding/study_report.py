"""The study report: one folder with an HTML page and PNG figures, opened in any browser.

Built from a study decode run's ``summary.json`` (``recall-lab study decode``): per decoder the
group statistics (:mod:`decoding.group`), each participant's honest F1 against their own
permutation null, the pooled confusion matrix, and every participant's decoded trajectory
(copied from their report, so the folder stands alone). The leaky figure of RYM's protocol is
shown beside the honest one, marked, with why it is not evidence.

When the study has a preference run (``recall-lab study preference``), the newest one gets its
own section: the preference rate with its binomial test, the mean r between rated and intended
valence with its confidence interval for the reconstruction and the control, and each
participant's row. A study with a preference run and no decode run gets a report of that
section alone.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError
from data_schema.progress import published_runs, run_folder
from decoding.group import group_result
from decoding.labels import CLASS_NAMES

LEAKY_EXPLANATION = (
    "The LEAKY figure follows the RYM paper's protocol: the embedding is fitted on all windows "
    "with their labels, test windows included, and only the last classifier is "
    "cross-validated. The test labels have then already shaped the space the classifier "
    "works in, so the figure can be high on data with no affect information at all (an "
    "independent check found 0.43-1.00 on real EEG with random labels). It is shown for "
    "comparison with the paper only; the honest figure, with nothing fitted on the test "
    "windows, and its permutation chance level are the evidence."
)


def latest_run(study_root: Path) -> Path:
    runs = published_runs(study_root / "derivatives" / "decoding" / "runs")
    if not runs:
        raise RecallLabError(
            f"{study_root} has no study decode yet: run 'recall-lab study decode {study_root}' "
            f"(or 'recall-lab study preference {study_root}' for a report of the preference "
            "study alone)"
        )
    return runs[-1]


def write_study_report(study: Any, run: str | None = None) -> Path:
    """Write the report of decode run ``run`` (default: the newest), with the newest
    preference run's section if the study has one; returns index.html. Without any decode
    run (and no ``run`` asked for) a study with a preference run gets that section alone."""
    from generation.preference import latest_study_preference

    root = study.root
    preference = latest_study_preference(root)
    has_decode = bool(published_runs(root / "derivatives" / "decoding" / "runs"))
    if run is None and not has_decode and preference is not None:
        with run_folder(root / "derivatives" / "reports") as folder:
            body = [f"<h1>{html.escape(study.name)}</h1>", "<p>No study decode run yet.</p>"]
            body.append(preference_section(study, *preference))
            (folder.partial / "index.html").write_text(_document(study, body))
        return folder.final / "index.html"

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = root / "derivatives" / "decoding" / "runs" / run if run else latest_run(root)
    summary_file = run_dir / "summary.json"
    if not summary_file.is_file():
        raise RecallLabError(f"{run_dir}: no such study decode run (no summary.json)")
    summary = json.loads(summary_file.read_text())
    participants = summary["participants"]
    ok = {s: r for s, r in sorted(participants.items()) if r["status"] == "ok"}
    # Every decoder any participant has (across participants, "... (within)" too), in order.
    decoders = list(dict.fromkeys(d for r in ok.values() for d in r.get("decoders", {})))
    with run_folder(root / "derivatives" / "reports") as folder:
        out = folder.partial
        groups = {d: group_result(d, ok) for d in decoders}
        names = summary.get("class_names") or list(CLASS_NAMES)
        for d in decoders:
            _plot_f1(plt, d, ok, out / f"f1_{_slug(d)}.png")
            _plot_confusion(plt, d, ok, out / f"confusion_{_slug(d)}.png", names)
        for sub, r in ok.items():
            src = root / r["report"] / "trajectory.png" if r.get("report") else None
            if src is not None and src.is_file():
                shutil.copyfile(src, out / f"trajectory_sub-{sub}.png")
        (out / "group.json").write_text(
            json.dumps({d: (g.to_dict() if g else None) for d, g in groups.items()}, indent=2)
        )
        (out / "index.html").write_text(_page(study, run_dir, summary, ok, groups, out, preference))
    return folder.final / "index.html"


def _plot_f1(plt, decoder: str, ok: dict, path: Path) -> None:
    subs = list(ok)
    fig, ax = plt.subplots(figsize=(max(5, 0.7 * len(subs) + 2), 3.8))
    for i, sub in enumerate(subs):
        m = ok[sub]["decoders"].get(decoder)
        if m is None:
            continue
        null = np.asarray(m.get("null_f1_weighted") or [], float)
        first = i == 0
        if len(null):
            lo, hi = np.percentile(null, [5, 95])
            ax.plot([i, i], [lo, hi], color="0.6", lw=6, solid_capstyle="butt",
                    label="chance, 5-95 %" if first else None)  # fmt: skip
            ax.plot(i, null.mean(), "_", color="0.3", ms=16, label="chance" if first else None)
        if m.get("f1_weighted") is not None:
            ax.plot(i, m["f1_weighted"], "o", color="tab:purple", ms=8,
                    label="honest F1" if first else None)  # fmt: skip
        if m.get("leaky_f1_weighted") is not None:
            ax.plot(i, m["leaky_f1_weighted"], "x", color="tab:red", ms=7,
                    label="RYM protocol (LEAKY)" if first else None)  # fmt: skip
    ax.set_xticks(range(len(subs)), [f"sub-{s}" for s in subs], rotation=45, ha="right")
    ax.set_ylabel("weighted F1")
    ax.set_ylim(0, 1)
    ax.set_title(f"{decoder}: each participant against their own chance", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_confusion(plt, decoder: str, ok: dict, path: Path, names: list[str]) -> None:
    # The classes the entries name (EAV's five emotions with labels.target: emotion); entries
    # written before targets existed are the study's (``names``), valence's three before that.
    names = list(names)
    total = None
    for r in ok.values():
        m = r["decoders"].get(decoder, {})
        cm = m.get("confusion")
        if cm:
            names = list(m.get("class_names") or names)
            total = np.asarray(cm, float) if total is None else total + np.asarray(cm, float)
    k = len(names)
    if total is None:
        total = np.zeros((k, k))
    rows = total.sum(axis=1, keepdims=True)
    norm = np.divide(total, rows, out=np.zeros_like(total), where=rows > 0)
    grow = 0.8 * max(0, k - 3)  # room for five emotions' cells and names
    fig, ax = plt.subplots(figsize=(4.2 + grow, 3.6 + grow))
    ax.imshow(norm, vmin=0, vmax=1, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({int(total[i, j])})", ha="center", va="center")
    ax.set_xticks(range(k), names, rotation=0 if k <= 3 else 45)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("decoded")
    ax.set_ylabel("reported")
    ax.set_title(f"{decoder}: all participants (out of fold)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _slug(decoder: str) -> str:
    """A file name part for a decoder ("cebra_time_knn (within)" -> "cebra_time_knn_within")."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", decoder).strip("_")


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "not computed"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return html.escape(str(v))
    return "not computed" if not np.isfinite(x) else f"{x:.{digits}f}"


def _classes_line(summary: dict) -> str:
    """The classes the run told apart, and what chance means for them: each participant's
    permutation null, near 1/k for k balanced classes (0.2 for EAV's five emotions)."""
    names = summary.get("class_names") or list(CLASS_NAMES)
    target = summary.get("target") or "valence"
    k = len(names)
    return (
        f"<p>Classes ({html.escape(target)}, {k}): {html.escape(', '.join(names))}. "
        f"Guessing gives about 1/{k} = {1 / k:.2f} balanced accuracy when the classes are "
        "balanced; every chance figure below is measured (the same decoding with the labels "
        "shifted in time against the EEG), never assumed, and the group statistics compare "
        "each participant with their own chance.</p>"
    )


def _document(study, body: list[str]) -> str:
    """The HTML page around ``body``'s parts."""
    head = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(study.name)}: study report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:4px 8px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}"
        ".leaky{color:#b00}img{max-width:100%}</style></head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>"])


def _ci(c: dict) -> str:
    if c.get("ci95") is None:
        return "no interval (fewer than two participants)"
    return f"[{_fmt(c['ci95'][0])}, {_fmt(c['ci95'][1])}]"


def preference_section(study, run: str, doc: dict) -> str:
    """The preference study's section: the figures of ``summarize``, then each participant."""
    e = html.escape
    fig = doc.get("summary", {})
    rate = fig.get("preference_rate")
    parts = [
        "<h2>Preference: the reconstruction beside its reordered control</h2>",
        f"<p>Preference run <code>{e(f'derivatives/preference/{run}')}</code>: "
        f"{len(doc.get('sessions', {}))} judging session(s), "
        f"{len(doc.get('skipped', {}))} session file(s) left out (no judgements or unreadable). "
        "Each "
        "memory's reconstruction and its control were shown blind, in counterbalanced order; "
        "r is Pearson's r between the valence rated while watching and the valence the video "
        "was made to carry, averaged over participants through Fisher z.</p>",
        "<table><tr><th class='l'>study figure</th><th>value</th></tr>",
        f"<tr><td class='l'>judgements</td><td>{fig.get('judgements', 0)}</td></tr>",
        f"<tr><td class='l'>chose the reconstruction</td>"
        f"<td>{fig.get('chose_reconstruction', 0)}</td></tr>",
        f"<tr><td class='l'>preference rate</td>"
        f"<td>{'not computed' if rate is None else f'{100 * rate:.0f} %'}</td></tr>",
        f"<tr><td class='l'>p, exact binomial test against 50 %</td>"
        f"<td>{_fmt(fig.get('binomial_p'), 4)}</td></tr>",
    ]
    for shows in ("reconstruction", "control"):
        c = fig.get(f"correlation_{shows}") or {}
        parts.append(
            f"<tr><td class='l'>mean r, {shows} ({c.get('participants', 0)} participant(s)) "
            f"[95 % CI]</td><td>{_fmt(c.get('mean_r'))} {_ci(c)}</td></tr>"
        )
    parts.append("</table>")
    parts.append(
        "<table><tr><th class='l'>participant</th><th>sessions</th><th>judgements</th>"
        "<th>chose reconstruction</th><th>mean r reconstruction</th><th>mean r control</th></tr>"
    )
    for key, row in doc.get("participants", {}).items():
        parts.append(
            f"<tr><td class='l'>{e(key)}</td><td>{row.get('sessions', '')}</td>"
            f"<td>{row.get('judgements', '')}</td><td>{row.get('chose_reconstruction', '')}</td>"
            f"<td>{_fmt(row.get('mean_r_reconstruction'))}</td>"
            f"<td>{_fmt(row.get('mean_r_control'))}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def _page(
    study,
    run_dir: Path,
    summary: dict,
    ok: dict,
    groups: dict,
    out: Path,
    preference: tuple[str, dict] | None = None,
) -> str:
    e = html.escape
    parts = [
        f"<h1>{e(study.name)}</h1>",
        f"<p>Decode run <code>{e(str(run_dir.relative_to(study.root)))}</code> on "
        f"{e(summary.get('where', ''))}, {len(ok)} participant(s) decoded, "
        f"{summary.get('seconds', 0):.0f} s. "
        + (
            "Decoded across participants: each participant was predicted by models fitted on "
            "the other participants only (leave one participant out); "
            if "across_participants" in summary
            else "Each participant's sessions were decoded together; "
        )
        + "every figure below is out of fold (honest) unless marked LEAKY.</p>",
        _classes_line(summary),
    ]
    across = summary.get("across_participants")
    if across:
        parts.append(
            "<h2>All participants pooled</h2><table><tr><th class='l'>decoder</th>"
            "<th>honest F1</th><th>chance</th><th>p</th><th>balanced acc.</th>"
            "<th>chance (balanced acc.)</th>"
            "<th class='leaky'>LEAKY F1 (RYM protocol)</th><th class='l'>leaky fit</th></tr>"
        )
        for d, m in across["decoders"].items():
            how = m.get("leaky_note") or (
                "multi-session" if m.get("leaky_multi_session") else "one pooled model"
            )
            parts.append(
                f"<tr><td class='l'>{e(d)}</td><td>{_fmt(m.get('f1_weighted'))}</td>"
                f"<td>{_fmt(m.get('chance_f1_weighted'))}</td><td>{_fmt(m.get('p_value'))}</td>"
                f"<td>{_fmt(m.get('balanced_accuracy'))}</td>"
                f"<td>{_fmt(m.get('chance_balanced_accuracy'))}</td>"
                f"<td class='leaky'>{_fmt(m.get('leaky_f1_weighted'))}</td>"
                f"<td class='l'>{e(how)}</td></tr>"
            )
        parts.append("</table>")
    for d, g in groups.items():
        parts.append(f"<h2>{e(d)}</h2>")
        if g is None:
            parts.append("<p>Fewer than two participants: no group statistics.</p>")
        else:
            parts.append(
                "<table><tr><th class='l'>group figure</th><th>value</th></tr>"
                f"<tr><td class='l'>participants</td><td>{g.n}</td></tr>"
                f"<tr><td class='l'>mean honest weighted F1</td><td>{_fmt(g.mean_f1)}</td></tr>"
                f"<tr><td class='l'>mean chance (each participant's permutation null)</td>"
                f"<td>{_fmt(g.mean_chance)}</td></tr>"
                f"<tr><td class='l'>mean difference from chance [95 % CI]</td>"
                f"<td>{_fmt(g.mean_difference)} [{_fmt(g.ci95[0])}, {_fmt(g.ci95[1])}]</td></tr>"
                f"<tr><td class='l'>p, sign-flip test "
                f"({'exact' if g.sign_flip_exact else 'random flips'})</td>"
                f"<td>{_fmt(g.p_sign_flip, 4)}</td></tr>"
                f"<tr><td class='l'>p, summed participant nulls</td>"
                f"<td>{_fmt(g.p_summed_null, 4)}</td></tr>"
                f"<tr><td class='l'>participants above their own chance (p &le; 0.05)</td>"
                f"<td>{_fmt(g.fraction_above_chance, 2)}</td></tr>"
                f"<tr><td class='l leaky'>mean F1, RYM protocol (LEAKY, not evidence)</td>"
                f"<td class='leaky'>{_fmt(g.leaky_mean_f1)}</td></tr></table>"
            )
        parts.append(
            "<table><tr><th class='l'>participant</th><th>honest F1</th><th>chance</th>"
            "<th>p</th><th>balanced acc.</th><th>chance (balanced acc.)</th><th>split</th>"
            "<th class='leaky'>LEAKY F1</th>"
            "<th>windows</th><th class='l'>channels used</th></tr>"
        )
        for sub, r in ok.items():
            m = r["decoders"].get(d)
            if m is None:
                continue
            ch = r.get("channels", {})
            left = "; ".join(f"{k}: {', '.join(v)}" for k, v in ch.get("left_out", {}).items())
            parts.append(
                f"<tr><td class='l'>sub-{e(sub)}</td><td>{_fmt(m.get('f1_weighted'))}</td>"
                f"<td>{_fmt(m.get('chance_f1_weighted'))}</td><td>{_fmt(m.get('p_value'))}</td>"
                f"<td>{_fmt(m.get('balanced_accuracy'))}</td>"
                f"<td>{_fmt(m.get('chance_balanced_accuracy'))}</td>"
                f"<td>{e(str(m.get('split')))}</td>"
                f"<td class='leaky'>{_fmt(m.get('leaky_f1_weighted'))}</td>"
                f"<td>{r.get('n_windows', '')}</td><td class='l'>"
                f"{e(', '.join(ch.get('used', [])))}"
                + (f" (left out: {e(left)})" if left else "")
                + "</td></tr>"
            )
        parts.append("</table>")
        parts.append(f"<img src='f1_{e(_slug(d))}.png' alt='F1 against chance, {e(d)}'>")
        parts.append(f"<img src='confusion_{e(_slug(d))}.png' alt='confusion, {e(d)}'>")
    parts.append(f"<h2>Why the LEAKY figure is not evidence</h2><p>{e(LEAKY_EXPLANATION)}</p>")
    parts.append("<h2>Decoded trajectories</h2>")
    for sub in ok:
        name = f"trajectory_sub-{sub}.png"
        if (out / name).is_file():
            parts.append(f"<h3>sub-{e(sub)}</h3><img src='{e(name)}' alt='sub-{e(sub)}'>")
    failed = {s: r for s, r in summary["participants"].items() if r["status"] != "ok"}
    if failed or summary.get("skipped"):
        parts.append("<h2>Not in the figures</h2><ul>")
        for s, r in failed.items():
            parts.append(f"<li>sub-{e(s)}: decoding failed: {e(r.get('reason', ''))}</li>")
        for f, why in summary.get("skipped", {}).items():
            parts.append(f"<li>{e(f)}: {e(why)}</li>")
        parts.append("</ul>")
    if preference is not None:
        parts.append(preference_section(study, *preference))
    return _document(study, parts)
