"""The participant's verdict on the reconstructions: per session and across a study.

A session recorded with a ``preference`` phase (docs/protocols.md) holds, per memory, the
two videos shown (``stimulus/video_start``: which was A, which B, what each shows), the
ratings after each (``participant/preference_rating``), the choice
(``participant/preference_choice``) and the continuous valence rated while watching (the
``valence`` stream). From them, per memory:

- ``chose_reconstruction``: whether the reconstruction from the reported affect was preferred
  to its reordered control (RYM's user study: 56 % of judgements);
- the ratings of each video per scale;
- ``r_reconstruction``: Pearson's r between the valence the participant rated while watching
  the reconstruction and the valence the reconstruction was made to carry (its segments'
  intended valence, a step function on the video's time), sampled at the rating rate
  (RYM's r = 0.265 between generated and reported affect dynamics); ``r_control`` the same
  for the control with its own segments, the figure to compare with.

Across a study: the preference rate with a two-sided exact binomial test against 0.5, and the
mean correlation over participants with a 95 % confidence interval (Fisher z, t over
participants). :func:`study_preference` does it for every judging session of a study folder
(``recall-lab study preference``) and writes ``STUDY/derivatives/preference/run-NNN/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError

#: Stage of the session file's derived runs: ``/derived/study/run-NNN`` (attr ``analysis``).
STAGE = "study"
#: Least seconds of valence rating inside a video for a correlation.
MIN_RATED_SECONDS = 2.0


def _events(session: Any, source: str, label: str) -> list[tuple[float, dict]]:
    out = []
    for e in session.events_where(source=source, label=label):
        try:
            out.append((e.timestamp, json.loads(e.value)))
        except (TypeError, json.JSONDecodeError):
            continue
    return out


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _intended(segments: list[list[float]], t: np.ndarray) -> np.ndarray:
    """The intended valence at video times ``t`` (segments ``[start, end, valence]``)."""
    out = np.full(len(t), np.nan)
    for start, end, valence in segments:
        out[(t >= start) & (t < end)] = valence
    return out


def analyse_session(path: str | Path, reconstructions_from: str | Path | None = None) -> dict:
    """Per memory judged in ``path``: the choice, the ratings and the correlations.

    The intended valence of each video's segments comes from the session that made them:
    ``reconstructions_from``, by default the session's ``preference_source`` attribute (written
    when the judging session was recorded). Raises :class:`RecallLabError` in one line when
    the session holds no preference judgement or the videos' session cannot be read.
    """
    from data_schema.reader import read_session
    from protocols.reconstructions import load_reconstructions

    session = read_session(path)
    starts = _events(session, "stimulus", "video_start")
    if not starts:
        raise RecallLabError(
            f"{Path(path).name} holds no preference judgement (no video was shown: record a "
            "protocol with a preference phase)"
        )
    source = reconstructions_from or session.attrs.get("preference_source")
    if not source:
        raise RecallLabError(
            f"{Path(path).name} does not say which session made the videos; give it with "
            "--reconstructions FILE"
        )
    run = str(session.attrs.get("preference_run") or "latest")
    recs = load_reconstructions(source, run)
    valence = session.streams.get("valence")
    v_t = valence.timestamps if valence is not None else np.zeros(0)
    v_x = valence.data[:, 0] if valence is not None else np.zeros(0)
    ends = {(v["memory"], v["video"]): t for t, v in _events(session, "stimulus", "video_end")}
    memories: dict[str, dict[str, Any]] = {}
    for t0, v in starts:
        mem = memories.setdefault(
            v["memory"], {"videos": {}, "ratings": {}, "choice": None, "chose": None}
        )
        shows = v["shows"]
        mem["videos"][v["video"]] = shows
        rec = recs.get(v["memory"])
        r = None
        seconds = 0.0
        if rec is not None and shows in rec.videos and len(v_t):
            t1 = ends.get((v["memory"], v["video"]), t0 + float(v["seconds"]))
            inside = (v_t >= t0) & (v_t <= t1)
            seconds = float(np.count_nonzero(inside)) / max(valence.info.nominal_rate, 1e-9)
            if seconds >= MIN_RATED_SECONDS:
                video_t = v_t[inside] - t0
                intended = _intended([list(s) for s in rec.videos[shows].segments], video_t)
                ok = np.isfinite(intended)
                r = _pearson(v_x[inside][ok], intended[ok])
        mem[f"r_{shows}"] = r
        mem[f"rated_seconds_{shows}"] = seconds
    for _, v in _events(session, "participant", "preference_rating"):
        mem = memories.get(v["memory"])
        if mem is not None:
            shows = mem["videos"].get(v["video"])
            mem["ratings"].setdefault(shows or v["video"], {})[v["scale"]] = int(v["value"])
    for _, v in _events(session, "participant", "preference_choice"):
        mem = memories.get(v["memory"])
        if mem is not None:
            mem["choice"] = v["chose"]
            shows = mem["videos"].get(v["chose"])
            mem["chose"] = shows
    for mem in memories.values():
        mem["chose_reconstruction"] = (
            None if mem["chose"] is None else mem["chose"] == "reconstruction"
        )
    return {
        "session": Path(path).name,
        "participant": session.participant_id,
        "reconstructions_from": str(source),
        "run": run,
        "memories": memories,
    }


def write_session_analysis(path: str | Path, analysis: dict) -> str:
    """Store ``analysis`` as a new ``/derived/study/run-NNN`` of ``path``; its HDF5 path."""
    from data_schema.derived import new_derived_run

    with new_derived_run(path, STAGE, {"analysis": "preference"}) as g:
        g.attrs["analysis"] = "preference"
        g.attrs["preference"] = json.dumps(analysis)
        for memory, m in analysis["memories"].items():
            sub = g.create_group(memory)
            sub.attrs["chose_reconstruction"] = (
                -1 if m["chose_reconstruction"] is None else int(m["chose_reconstruction"])
            )
            for shows in ("reconstruction", "control"):
                r = m.get(f"r_{shows}")
                sub.attrs[f"r_{shows}"] = np.nan if r is None else float(r)
            sub.attrs["ratings"] = json.dumps(m["ratings"])
        return g.name


def summarize(analyses: list[dict]) -> dict:
    """Across sessions (a study): preference rate with an exact binomial test against 0.5, and
    the mean of the participants' correlations with a 95 % confidence interval."""
    from scipy import stats

    chose = [
        m["chose_reconstruction"]
        for a in analyses
        for m in a["memories"].values()
        if m["chose_reconstruction"] is not None
    ]
    n, k = len(chose), int(sum(chose))
    out: dict[str, Any] = {
        "judgements": n,
        "chose_reconstruction": k,
        "preference_rate": k / n if n else None,
        "binomial_p": float(stats.binomtest(k, n, 0.5).pvalue) if n else None,
    }
    for shows in ("reconstruction", "control"):
        per_participant: dict[str, list[float]] = {}
        for a in analyses:
            for m in a["memories"].values():
                r = m.get(f"r_{shows}")
                if r is not None and math.isfinite(r):
                    per_participant.setdefault(a["participant"], []).append(r)
        # Each participant's mean correlation (Fisher z), then across participants.
        z = np.array(
            [np.mean(np.arctanh(np.clip(rs, -0.999, 0.999))) for rs in per_participant.values()]
        )
        entry: dict[str, Any] = {"participants": len(z), "mean_r": None, "ci95": None}
        if len(z):
            entry["mean_r"] = float(np.tanh(z.mean()))
        if len(z) >= 2:
            half = stats.t.ppf(0.975, len(z) - 1) * z.std(ddof=1) / math.sqrt(len(z))
            entry["ci95"] = [float(np.tanh(z.mean() - half)), float(np.tanh(z.mean() + half))]
        out[f"correlation_{shows}"] = entry
    return out


def format_summary(summary: dict) -> str:
    """The study's figures in a few lines."""
    lines = []
    if summary["judgements"]:
        lines.append(
            f"preferred the reconstruction in {summary['chose_reconstruction']} of "
            f"{summary['judgements']} judgements ({100 * summary['preference_rate']:.0f} %; "
            f"binomial test against 50 %: p = {summary['binomial_p']:.3g})"
        )
    else:
        lines.append("no preference judgement")
    for shows in ("reconstruction", "control"):
        c = summary[f"correlation_{shows}"]
        if c["mean_r"] is None:
            lines.append(f"r ({shows}): not computed (no continuous valence rating)")
            continue
        ci = (
            f", 95 % CI [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]"
            if c["ci95"] is not None
            else " (one participant: no interval)"
        )
        lines.append(
            f"rated vs intended valence while watching the {shows}: mean r = "
            f"{c['mean_r']:.3f} over {c['participants']} participant(s){ci}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------- a whole study
#: Where a study's preference runs go: ``STUDY/derivatives/preference/run-NNN/``.
STUDY_RUNS = ("derivatives", "preference")


@dataclass
class StudyPreference:
    """What ``recall-lab study preference`` found: each judging session's analysis (by its
    place in the study), the files left out and why, each participant's row, the study's
    figures (:func:`summarize`) and the run folder written (``None`` with ``write=False``)."""

    study: str
    sessions: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    participants: dict[str, dict] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    folder: Path | None = None

    def to_dict(self) -> dict:
        return {
            "study": self.study,
            "folder": None if self.folder is None else str(self.folder),
            "sessions": self.sessions,
            "skipped": self.skipped,
            "participants": self.participants,
            "summary": self.summary,
        }


def judgements_held(session: Any) -> int:
    """How many memories a read session judged (its ``participant/preference_choice``)."""
    return len(_events(session, "participant", "preference_choice"))


def _mean_r(rs: list[float]) -> float | None:
    """The mean of correlations through Fisher z, as :func:`summarize` averages them."""
    rs = [r for r in rs if r is not None and math.isfinite(r)]
    if not rs:
        return None
    return float(np.tanh(np.mean(np.arctanh(np.clip(rs, -0.999, 0.999)))))


def participant_rows(analyses: dict[str, dict]) -> dict[str, dict]:
    """Per participant (``sub-<label>``): sessions, judgements, how many chose the
    reconstruction, and the mean r while watching the reconstruction and the control."""
    rows: dict[str, dict] = {}
    rs: dict[str, dict[str, list[float]]] = {}
    for a in analyses.values():
        key = f"sub-{a['subject']}"
        row = rows.setdefault(
            key,
            {"participant": a["participant"], "sessions": 0, "judgements": 0,
             "chose_reconstruction": 0},
        )  # fmt: skip
        row["sessions"] += 1
        mine = rs.setdefault(key, {"reconstruction": [], "control": []})
        for m in a["memories"].values():
            if m["chose_reconstruction"] is not None:
                row["judgements"] += 1
                row["chose_reconstruction"] += int(m["chose_reconstruction"])
            for shows in ("reconstruction", "control"):
                r = m.get(f"r_{shows}")
                if r is not None:
                    mine[shows].append(r)
    for key, row in rows.items():
        for shows in ("reconstruction", "control"):
            row[f"mean_r_{shows}"] = _mean_r(rs[key][shows])
    return dict(sorted(rows.items()))


def _source_of(rel: str, session: Any, moved_to: dict[str, Path]) -> Path:
    """The session that made the videos ``rel`` judged, where it is now; one line if gone."""
    source = session.attrs.get("preference_source")
    if not source:
        raise RecallLabError(
            f"{rel} does not say which session made the videos it judged; analyse it alone with "
            f"'recall-lab preference {rel} --reconstructions FILE'"
        )
    source = Path(str(source))
    if source.is_file():
        return source
    if source.name in moved_to:
        return moved_to[source.name]
    raise RecallLabError(
        f"{rel}: the session that made its videos is no longer at {source} (moved or "
        f"deleted); put it back, or give its new place with --reconstructions "
        f"NEW_FOLDER/{source.name}"
    )


def study_preference(
    study: Any, *, write: bool = True, reconstructions: list[str | Path] | tuple = ()
) -> StudyPreference:
    """The preference study over every session of ``study`` that holds judgements.

    Sessions without any (or unreadable ones) are left out with the reason. Everything is
    read and checked before anything is written; then (``write``) each judging session gets
    a new ``/derived/study/run-NNN`` and the study a new
    ``STUDY/derivatives/preference/run-NNN/`` with ``summary.json`` and ``summary.md`` (never
    over an earlier run). ``reconstructions``: the new places of sessions that made the videos
    and were moved, matched by file name. Raises :class:`RecallLabError` in one line when no
    session holds judgements or a judging session's videos cannot be read.
    """
    from data_schema.progress import run_folder
    from data_schema.reader import read_session

    moved_to = {Path(p).name: Path(p) for p in reconstructions}
    for p in moved_to.values():
        if not p.is_file():
            raise RecallLabError(f"--reconstructions {p}: no such session file")
    result = StudyPreference(study.name)
    judging = []
    sessions = study.sessions()
    for s in sessions:
        rel = s.relative(study.root)
        try:
            session = read_session(s.path)
        except (RecallLabError, OSError) as exc:
            result.skipped[rel] = f"unreadable: {exc}"
            continue
        if not _events(session, "stimulus", "video_start"):
            result.skipped[rel] = "no preference judgement"
            continue
        judging.append((s, rel, _source_of(rel, session, moved_to)))
    if not judging:
        raise RecallLabError(
            f"study {study.name!r} holds no preference judgement ({len(sessions)} session "
            "file(s) looked at): record a protocol with a preference phase and add the sessions "
            "with 'recall-lab study add'"
        )
    for s, rel, source in judging:
        try:
            a = analyse_session(s.path, source)
        except RecallLabError as exc:
            raise RecallLabError(f"{rel}: {exc}") from None
        a["subject"] = s.subject
        result.sessions[rel] = a
    result.participants = participant_rows(result.sessions)
    result.summary = summarize(list(result.sessions.values()))
    if not write:
        return result
    with run_folder(study.root.joinpath(*STUDY_RUNS)) as folder:
        for s, rel, _ in judging:
            result.sessions[rel]["stored"] = write_session_analysis(s.path, result.sessions[rel])
        doc = {**result.to_dict(), "created_at": _now()}
        del doc["folder"]
        (folder.partial / "summary.json").write_text(json.dumps(doc, indent=2))
        (folder.partial / "summary.md").write_text(summary_markdown(result))
    result.folder = folder.final
    return result


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _r(v: float | None) -> str:
    return "not computed" if v is None else f"{v:.3f}"


def summary_markdown(result: StudyPreference) -> str:
    """``summary.md``: the participants' rows, then the study's figures."""
    lines = [
        f"# Preference study: {result.study}",
        "",
        f"{len(result.sessions)} judging session(s) of {len(result.participants)} "
        f"participant(s); {len(result.skipped)} session file(s) left out (no judgements or "
        "unreadable: `skipped` in summary.json).",
        "",
        "| participant | sessions | judgements | chose reconstruction | mean r reconstruction "
        "| mean r control |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, row in result.participants.items():
        lines.append(
            f"| {key} | {row['sessions']} | {row['judgements']} | "
            f"{row['chose_reconstruction']} | {_r(row['mean_r_reconstruction'])} | "
            f"{_r(row['mean_r_control'])} |"
        )
    lines += ["", "## Study", ""]
    lines += [f"- {line}" for line in format_summary(result.summary).splitlines()]
    return "\n".join(lines) + "\n"


def latest_study_preference(study_root: str | Path) -> tuple[str, dict] | None:
    """The newest ``STUDY/derivatives/preference/run-NNN``'s name and ``summary.json``."""
    from data_schema.progress import latest_run_summary

    return latest_run_summary(Path(study_root).joinpath(*STUDY_RUNS))
