"""``recall-lab study init|add|status|decode|generate|preference|report|export``: many
participants' sessions in one folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from app.commands._progress import add_progress_option, progress_from_args
from app.commands.generate import add_generation_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="a study folder: participants' sessions with BIDS-style names",
        description="Make a study folder, add session files to it (copied under "
        "sub-<pseudonym>/ses-<visit>/ with BIDS-style names, never moved or changed), see what "
        "it holds and what was decoded or generated, and export it as one BIDS dataset.",
    )
    actions = p.add_subparsers(dest="study_action", metavar="ACTION", required=True)

    a = actions.add_parser("init", help="make a new, empty study folder")
    a.add_argument("study", type=Path, help="a new or empty folder")
    a.add_argument("--name", default=None, help="the study's name (default: the folder's)")
    a.add_argument("--task", default="recall", help="default BIDS task label (recall)")
    a.set_defaults(func=run_init)

    a = actions.add_parser("add", help="copy session files into the study")
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("sessions", nargs="+", type=Path, help="session files (.h5)")
    a.add_argument(
        "--session",
        default=None,
        help="visit label for all of them (default: one per recording day, numbered)",
    )
    a.add_argument("--task", default=None, help="task label (default: from the protocol)")
    a.set_defaults(func=run_add)

    a = actions.add_parser("status", help="participants, sessions and their results")
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("--json", action="store_true", help="print JSON for scripts")
    a.set_defaults(func=run_status)

    a = actions.add_parser(
        "decode",
        help="decode every participant (one Dask task each; local, or a cluster)",
        description="Decode each participant's sessions together (as recall-lab decode does), "
        "one task per participant on Dask: a local cluster of one worker per CPU core by "
        "default, --jobs 1 for no Dask, or an existing cluster (--scheduler, "
        "--scheduler-file, DASK_SCHEDULER_ADDRESS) whose workers share the study's file "
        "system. Results go into the session files, reports into "
        "STUDY/derivatives/decoding/sub-*/, and the study run's summary into "
        "STUDY/derivatives/decoding/runs/run-NNN/.",
    )
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("--config", type=Path, default=None, help="YAML or JSON file of settings")
    a.add_argument("--preset", default=None, help="settings from decoding/presets/NAME.yaml")
    a.add_argument(
        "--models",
        type=Path,
        default=None,
        help="models folder (AST and ViT for the fusion decoders, e.g. --preset eav_emotion; "
        "the audio tagger for --preset music)",
    )
    a.add_argument("--jobs", type=int, default=None, help="local worker processes (1: no Dask)")
    a.add_argument("--scheduler", default=None, help="a Dask scheduler, e.g. tcp://host:8786")
    a.add_argument("--scheduler-file", default=None, help="a Dask scheduler file")
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    add_progress_option(a)
    a.set_defaults(func=run_decode)

    a = actions.add_parser(
        "generate",
        help="reconstruct every memory of the study (one Dask task each; local, or a cluster)",
        description="Make every session's reconstructions as recall-lab generate does, one "
        "task per memory on Dask (local by default, --jobs 1 for no Dask, --scheduler or "
        "--scheduler-file for a running cluster, or the study.yaml cluster section). Output: "
        "STUDY/derivatives/generation/sub-*/<session>/run-NNN/ and a run in each session file.",
    )
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("--jobs", type=int, default=None, help="local worker processes (1: no Dask)")
    a.add_argument("--scheduler", default=None, help="a Dask scheduler, e.g. tcp://host:8786")
    a.add_argument("--scheduler-file", default=None, help="a Dask scheduler file")
    add_generation_options(a)
    a.set_defaults(func=run_generate)

    a = actions.add_parser(
        "preference",
        help="the participants' verdict on the reconstructions, over the whole study",
        description="Analyse every session of the study that holds preference judgements "
        "(recorded with a preference phase; the others are left out and counted) as "
        "recall-lab preference does, reading the videos' segments from the session each one "
        "names: per participant the judgements, how often the reconstruction was chosen over "
        "its reordered control and the mean r between rated and intended valence; over the "
        "study the preference rate with an exact binomial test against 50 % and the mean r "
        "over participants with a 95 % confidence interval. Each judging session gets a new "
        "/derived/study/run-NNN and the study STUDY/derivatives/preference/run-NNN/ "
        "(summary.json, summary.md), never over an earlier run; --no-write writes nothing.",
    )
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument(
        "--reconstructions",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="where a session that made the videos is now, if it was moved (matched by file "
        "name; repeat for several)",
    )
    a.add_argument("--no-write", action="store_true", help="print only; write nothing")
    a.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    a.set_defaults(func=run_preference)

    a = actions.add_parser(
        "report",
        help="an HTML report of a study decode run (group statistics, figures) and of the "
        "newest preference run",
    )
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("--run", default=None, help="the decode run (default: the newest)")
    a.set_defaults(func=run_report)

    a = actions.add_parser("export", help="the whole study as one dataset")
    a.add_argument("study", type=Path, help="the study folder")
    a.add_argument("--format", choices=("bids",), default="bids", help="bids (the default)")
    a.add_argument("--out", type=Path, required=True, help="the new BIDS dataset's folder")
    a.add_argument("--line-freq", type=float, default=None, help="power-line frequency, Hz")
    a.set_defaults(func=run_export)


def run_init(args: argparse.Namespace) -> int:
    from data_schema.study import Study

    study = Study.init(args.study, name=args.name, task=args.task)
    print(f"study {study.name!r} made in {study.root} (task {study.task})")
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Add each file; a file that cannot be added is one line and the others still go in."""
    from data_schema.errors import RecallLabError
    from data_schema.study import Study

    study = Study.open(args.study)
    failed = 0
    for path in args.sessions:
        try:
            s = study.add(path, session=args.session, task=args.task)
        except RecallLabError as exc:
            failed += 1
            print(f"not added: {exc}", file=sys.stderr)
            continue
        print(f"added {path} as {s.relative(study.root)}")
    if failed:
        print(f"{failed} of {len(args.sessions)} file(s) not added", file=sys.stderr)
    return 1 if failed else 0


def run_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from data_schema.study import Study
    from decoding.study import study_status
    from generation.preference import latest_study_preference

    study = Study.open(args.study)
    rows = study_status(study)
    if args.json:
        print(json.dumps({"study": study.name, "sessions": [asdict(r) for r in rows]}, indent=2))
        return 0
    subjects = sorted({r.subject for r in rows})
    print(f"study {study.name!r}: {len(subjects)} participant(s), {len(rows)} session file(s)")
    last = _last_decode(study.root)
    if last is not None:
        run, summary = last
        bad = {s: r["reason"] for s, r in summary["participants"].items() if r["status"] != "ok"}
        print(
            f"  last study decode: {run} on {summary.get('where', '?')}, "
            f"{len(summary['participants']) - len(bad)} participant(s) decoded"
            + (f", {len(bad)} FAILED" if bad else "")
        )
        for sub, why in sorted(bad.items()):
            print(f"    sub-{sub} failed: {why}")
    pref = latest_study_preference(study.root)
    if pref is not None:
        run, summary = pref
        figures = summary.get("summary", {})
        print(
            f"  last study preference: {run}, {figures.get('judgements', 0)} judgement(s) of "
            f"{len(summary.get('participants', {}))} participant(s)"
        )
    for sub in subjects:
        mine = [r for r in rows if r.subject == sub]
        print(f"  sub-{sub}")
        for r in mine:
            if not r.ok:
                print(f"    {r.file}: UNREADABLE: {r.problem}")
                continue
            done = []
            if r.decoding_runs:
                done.append(f"decoded ({len(r.decoding_runs)} run(s))")
            if r.generation_runs:
                done.append(f"generated ({len(r.generation_runs)} run(s))")
            reports = _labels(r)
            if r.preference_judgements:
                reports += f", {r.preference_judgements} preference judgement(s)"
            print(
                f"    {Path(r.file).name}: {r.seconds:.0f} s, {r.channels} ch at {r.rate:g} Hz, "
                f"{reports}; {', '.join(done) or 'not decoded yet'}"
            )
    return 0


def run_decode(args: argparse.Namespace) -> int:
    """Decode the study; exit 1 if any participant failed (the others are kept)."""
    from data_schema.study import Study
    from decoding.config import load_config
    from decoding.labels import class_set
    from decoding.study import estimated_fits, plan_study_decode, run_study_decode

    study = Study.open(args.study)
    cfg = load_config(args.config, preset=args.preset)
    if args.models is not None:
        # Absolute: the workers of a cluster may start elsewhere on the shared file system.
        cfg.music.models = cfg.fusion.models = str(args.models.resolve())
    plans, skipped = plan_study_decode(study, cfg)
    classes = class_set(cfg.labels.target)
    print(
        f"study {study.name!r}: {len(plans)} participant(s) to decode with "
        f"{', '.join(cfg.decoders)} (labels: {cfg.labels.source}; {classes.target}: "
        f"{', '.join(classes.names)}); {len(skipped)} file(s) left out"
    )
    for file, why in skipped.items():
        print(f"  left out {file}: {why}")
    print(
        f"  about {estimated_fits(plans, cfg)} model fits in all "
        f"(CEBRA: {cfg.cebra.max_iterations} iterations each); see docs/study.md for timings"
    )
    progress = progress_from_args(args)
    with progress.cancellable():
        result = run_study_decode(
            study,
            cfg,
            jobs=args.jobs,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            progress=progress,
        )
    print(f"ran on {result.where}")
    for sub, r in sorted(result.participants.items()):
        if r["status"] != "ok":
            print(f"  sub-{sub}: FAILED: {r['reason']}")
            continue
        parts = [f"{name} {_figures(m, 'LEAKY')}" for name, m in r["decoders"].items()]
        print(f"  sub-{sub}: {'; '.join(parts)}")
    if result.across:
        print("  all participants pooled, each predicted by models fitted without them:")
        for name, m in result.across["decoders"].items():
            print(f"    {name}: {_figures(m, 'LEAKY (RYM protocol, not evidence)')}")
    print(f"summary: {result.folder / 'summary.json'}")
    return 1 if result.failed else 0


def _labels(r) -> str:
    """The labels one session holds, for ``study status`` (what decoding can learn from)."""
    held = []
    if r.valence_reports:
        held.append(f"{r.valence_reports} valence report(s)")
    if r.labelled_trials or r.emotion_trials:
        held.append(f"{max(r.labelled_trials, r.emotion_trials)} labelled trial(s)")
    if r.rated_clips:
        held.append(f"{r.rated_clips} rated clip(s)")
    none = "NO valence reports, labelled trials or rated clips (cannot be decoded)"
    return ", ".join(held) or none


def _figures(m: dict, leaky_label: str) -> str:
    """ "F1 0.812 (chance 0.640, p=0.050), LEAKY 0.930" for one decoder's summary entry."""
    f1 = "n/a" if m["f1_weighted"] is None else f"{m['f1_weighted']:.3f}"
    chance = (
        ""
        if m["p_value"] is None
        else f" (chance {m['chance_f1_weighted']:.3f}, p={m['p_value']:.3f})"
    )
    leaky = m.get("leaky_f1_weighted")
    return f"F1 {f1}{chance}" + ("" if leaky is None else f", {leaky_label} {leaky:.3f}")


def run_generate(args: argparse.Namespace) -> int:
    """Reconstruct the study's memories; exit 1 if any session failed (the others are kept)."""
    from app.commands.generate import config_from_args
    from data_schema.study import Study
    from generation.study import plan_study_generate, run_study_generate

    study = Study.open(args.study)
    cfg = config_from_args(args)
    plans, skipped = plan_study_generate(study)
    n = sum(len(p.memories) for p in plans)
    print(
        f"study {study.name!r}: {n} memory(ies) in {len(plans)} session(s) to reconstruct; "
        f"{len(skipped)} file(s) left out"
    )
    for file, why in skipped.items():
        print(f"  left out {file}: {why}")
    progress = progress_from_args(args)
    with progress.cancellable():
        result = run_study_generate(
            study,
            cfg,
            jobs=args.jobs,
            scheduler=args.scheduler,
            scheduler_file=args.scheduler_file,
            progress=progress,
        )
    print(f"ran on {result.where}")
    for file, r in sorted(result.sessions.items()):
        if r["status"] != "ok":
            print(f"  {file}: FAILED: {r['reason']}")
            continue
        print(f"  {file}: {r['folder']} ({', '.join(sorted(r['videos']))})")
    print(f"summary: {result.folder / 'summary.json'}")
    return 1 if result.failed else 0


def run_preference(args: argparse.Namespace) -> int:
    """The preference study; a study without judgements, or a judging session whose videos
    cannot be read, is one line (exit 2) and nothing is written."""
    from data_schema.study import Study
    from generation.preference import format_summary, study_preference

    study = Study.open(args.study)
    result = study_preference(study, write=not args.no_write, reconstructions=args.reconstructions)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    unreadable = {f: why for f, why in result.skipped.items() if why.startswith("unreadable")}
    print(
        f"study {study.name!r}: {len(result.sessions)} judging session(s) of "
        f"{len(result.participants)} participant(s); "
        f"{len(result.skipped) - len(unreadable)} session file(s) without judgements left out"
    )
    for file, why in unreadable.items():
        print(f"  left out {file}: {why}")
    for key, row in result.participants.items():
        rec, ctl = row["mean_r_reconstruction"], row["mean_r_control"]
        print(
            f"  {key}: chose the reconstruction in {row['chose_reconstruction']} of "
            f"{row['judgements']} judgement(s); mean r {_r(rec)} (reconstruction), "
            f"{_r(ctl)} (control)"
        )
    print(format_summary(result.summary))
    if result.folder is not None:
        print(f"summary: {result.folder / 'summary.json'}")
    return 0


def _r(v: float | None) -> str:
    return "not computed" if v is None else f"{v:.3f}"


def run_report(args: argparse.Namespace) -> int:
    from data_schema.study import Study
    from decoding.study_report import write_study_report

    study = Study.open(args.study)
    index = write_study_report(study, args.run)
    print(f"report: {index} (open it in a browser)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Every session into one BIDS dataset; a session that fails is one line, the others go
    on, and the exit status is 1 if any failed."""
    from data_schema.errors import RecallLabError, SessionFileError
    from data_schema.exporters import export_session
    from data_schema.study import Study

    study = Study.open(args.study)
    sessions = study.sessions()
    if not sessions:
        raise SessionFileError(f"{study.root} holds no sessions yet: add some with 'study add'")
    out = args.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SessionFileError(f"{out} exists and is not empty: give a new folder for the export")
    failed = 0
    for s in sessions:
        try:
            export_session(
                s.path,
                "bids",
                out,
                task=s.task,
                line_freq=args.line_freq,
                bids_session=s.session,
                bids_run=s.run,
            )
        except RecallLabError as exc:
            failed += 1
            print(f"not exported: {s.relative(study.root)}: {exc}", file=sys.stderr)
            continue
        print(f"exported {s.relative(study.root)}")
    print(f"BIDS dataset in {out}: {len(sessions) - failed} of {len(sessions)} session(s)")
    return 1 if failed else 0


def _last_decode(root: Path) -> tuple[str, dict] | None:
    """The newest study decode run's name and summary, if there is one."""
    from data_schema.progress import latest_run_summary

    return latest_run_summary(root / "derivatives" / "decoding" / "runs")
