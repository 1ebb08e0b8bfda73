"""A study decoded across participants (``evaluation.split: participants``; the ``rym``
preset): leave one participant out, as RYM evaluated, with the honest and the leaky figure
side by side.

Honest, per decoder and held-out participant: the representation (CEBRA) and the kNN read-out
are fitted on the other participants only, then predict every row of the held-out one. Chance:
the same with every session's labels circularly shifted against its EEG (``p`` shifts, the
same for every participant and decoder), giving each participant a permutation null, a chance
level and a p-value, and the group statistics of ``decoding/group.py``.

Leaky (RYM's protocol, marked LEAKY): one model fitted on every participant's EEG and labels
(with ``cebra.multi_session``: CEBRA's multi-session model, an input layer per participant, as
RYM trained it), then a kNN fitted on all participants but one reads the embedding of that one.
The held-out participant's labels shaped the embedding, so the figure is not evidence.

The work is split into Dask tasks that only compute: reading and preprocessing a session;
pooling the sessions; one task per decoder, held-out participant and permutation block (every
shift for decoders whose representation ignores the labels, fitted once; one shift per task
for CEBRA-Behavior, refitted each time); one task per decoder for the leaky fit. Tasks get
their data from earlier tasks, so a worker that dies is replaced by recomputation; results
depend only on the configuration (every fit is seeded and single-threaded). The summary is
written by the submitting process alone (``STUDY/derivatives/decoding/runs/run-NNN``); nothing
is written into the session files (the results belong to the study, not to one session).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from data_schema.errors import Cancelled, RecallLabError
from data_schema.progress import Progress
from decoding.config import DecodeConfig


def _refits(name: str, cfg: DecodeConfig) -> bool:
    """True when every shift refits ``name`` (its representation learns from the labels:
    CEBRA-Behavior, the multimodal fusion and its unimodal baselines, music-supervised)."""
    from decoding.decoders import learns_from_labels

    return learns_from_labels(name, cfg)


def pooled_fits(n_participants: int, cfg: DecodeConfig) -> int:
    """Models a leave-one-participant-out decode fits: per decoder, one per held-out
    participant (again per shift for label-using decoders) and one for the leaky fit."""
    ev = cfg.evaluation
    total = 0
    for name in cfg.decoders:
        shifts = ev.n_permutations_refit if _refits(name, cfg) else 0
        total += n_participants * (1 + shifts) + int(ev.leaky)
    return total


def shifted_labels(y: np.ndarray, session: np.ndarray, perm: int, cfg: DecodeConfig):
    """Labels of permutation ``perm`` (0: the real ones), the same wherever computed."""
    from decoding.evaluation import circular_shift

    if perm == 0:
        return y
    ev = cfg.evaluation
    rng = np.random.default_rng([ev.seed, 7919, perm])
    return circular_shift(y, session, rng, ev.min_shift)


def _single_threaded():
    import torch
    from threadpoolctl import threadpool_limits

    from decoding.study import tune_allocator

    tune_allocator()
    torch.set_num_threads(1)
    return threadpool_limits(limits=1)


def load_task(path: str, cfg: DecodeConfig) -> Any:
    """Task: read, preprocess and cut one session into rows (``SessionWindows``)."""
    from decoding.pipeline import load_session_windows

    with _single_threaded():
        return load_session_windows(path, cfg)


def pool_task(sessions: list[Any], cfg: DecodeConfig) -> Any:
    """Task: the sessions pooled on their common channels (a ``Dataset``), with the inputs
    besides the EEG that the decoders learn from (the voice and face of the fusion decoders,
    the music of music-supervised), read from the session files; its notes in ``ds.notes``."""
    from decoding.pipeline import add_side_inputs, build_dataset

    ds = build_dataset(sessions, cfg)
    ds.notes = add_side_inputs(ds, sessions, cfg)
    return ds


def index_task(ds: Any, sessions: list[Any]) -> dict[str, Any]:
    """Task: what the submitting process needs of the pooled data (no EEG), with the channels
    used and those left out per session (pooling keeps only the common ones)."""
    common = set(ds.feature_names)
    used = list(dict.fromkeys(f.rsplit(":", 1)[0] for f in ds.feature_names))
    left_out = {}
    for s in sessions:
        mine = dict.fromkeys(f.rsplit(":", 1)[0] for f in s.feature_names if f not in common)
        if mine:
            left_out[s.session_id] = list(mine)
    return {
        "y": ds.y,
        "session": ds.session,
        "participant": ds.participant,
        "session_ids": ds.session_ids,
        "codes": tuple(ds.classes.codes),
        "class_names": list(ds.classes.names),
        "target": ds.classes.target,
        "channels": {"used": used, "left_out": left_out},
        "notes": list(ds.notes),
    }


def _test_rows(ds: Any, subject: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(ds.participant == subject)
    return np.flatnonzero(ds.participant != subject), rows


def fold_task(
    ds: Any, name: str, subject: str, perms: list[int], cfg: DecodeConfig
) -> dict[int, np.ndarray]:
    """Task: fit ``name`` on every participant but ``subject`` and predict ``subject``'s rows,
    for each permutation in ``perms``. Returns class probabilities [rows x classes] per
    permutation.
    A label-free representation is fitted once and only the read-out sees each shift."""
    from decoding.decoders import make_decoder
    from decoding.evaluation import fit_representation, transform

    train, test = _test_rows(ds, subject)
    out: dict[int, np.ndarray] = {}
    with _single_threaded():
        dec, z_tr, z_te = None, None, None
        for p in perms:
            y = shifted_labels(ds.y, ds.session, p, cfg)
            if dec is None or not dec.label_free_representation:
                dec = make_decoder(name, cfg, cfg.evaluation.seed)
                # With the side inputs it declares (voice, face), for the same rows only.
                fit_representation(dec, ds, train, y[train])
                z_tr, z_te = transform(dec, ds, train), transform(dec, ds, test)
            dec.fit_readout(z_tr, y[train])
            out[p] = dec.predict_proba_from(z_te).astype(np.float32)
    return out


def leaky_task(ds: Any, name: str, cfg: DecodeConfig) -> dict[str, Any]:
    """Task: RYM's protocol. One fit on every participant's rows and labels (multi-session
    with an input layer per participant when ``cebra.multi_session`` and the decoder learns
    from labels), then per participant a kNN fitted on the others' embedding predicts it."""
    from decoding.decoders import make_decoder
    from decoding.evaluation import fit_representation, transform

    subjects = list(dict.fromkeys(ds.participant.tolist()))
    with _single_threaded():
        dec = make_decoder(name, cfg, cfg.evaluation.seed)
        z = np.empty((len(ds.y), cfg.cebra.output_dimension), np.float32)
        multi = cfg.cebra.multi_session and not dec.label_free_representation
        note = None
        if multi:
            # CEBRA's multi-session sampler draws positives of a class from every session: a
            # participant without the highest class makes it fail (IndexError), one without
            # a lower class makes it draw positives of the wrong class, silently.
            every = set(np.unique(ds.y).tolist())
            lacking = [s for s in subjects if set(np.unique(ds.y[ds.participant == s])) != every]
            if lacking:
                multi = False
                names = ", ".join(f"sub-{s}" for s in lacking)
                note = (
                    "one pooled model, not multi-session: CEBRA's multi-session training needs "
                    f"every class in every participant, and {names} lack(s) one"
                )
        if multi:
            rows = [np.flatnonzero(ds.participant == s) for s in subjects]
            for r, emb in zip(
                rows, dec.fit_multi_session([ds.X[r] for r in rows], [ds.y[r] for r in rows])
            ):
                z[r] = emb
        else:
            every_row = np.arange(len(ds.y))
            z = transform(fit_representation(dec, ds, every_row, ds.y), ds, every_row)
        pred = np.zeros(len(ds.y), np.int8)
        k_used = {}
        for s in subjects:
            train, test = _test_rows(ds, s)
            dec.fit_readout(z[train], ds.y[train])
            codes = np.asarray(ds.classes.codes)
            pred[test] = codes[dec.predict_proba_from(z[test]).argmax(1)]
            k_used[s] = getattr(getattr(dec, "readout", None), "n_neighbors", None)
    return {"pred": pred, "multi_session": multi, "k": k_used, "note": note}


def run_pooled(
    plans: list[Any],
    cfg: DecodeConfig,
    *,
    connect: Callable[[], tuple[Any, Any, str]] | None,
    prog: Progress,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any], str]:
    """Run the leave-one-participant-out decode of ``plans``; ``connect`` gives a Dask client
    (None: here, serially). Returns the study summary's per-participant entries (a participant
    whose sessions cannot be read or preprocessed is marked failed, the others go on), the
    pooled figures, and where it ran."""
    ev = cfg.evaluation
    runner = _Runner(connect, prog)
    entries: dict[str, dict[str, Any]] = {}
    try:
        todo = [(plan.subject, str(path)) for plan in plans for path in plan.paths]
        with prog.step("read and preprocess", len(todo), "session") as step:
            loaded = runner.run([load_task] * len(todo), [(p, cfg) for _, p in todo], step)
        kept = []
        for (subject, path), (ok, value) in zip(todo, loaded):
            if ok:
                kept.append((subject, value))
            else:
                entries[subject] = {"status": "failed", "reason": f"{path}: {value}"}
        kept = [(s, v) for s, v in kept if s not in entries]
        subjects = list(dict.fromkeys(s for s, _ in kept))
        if len(subjects) < 2:
            raise RecallLabError(
                "evaluation.split participants: leave-one-participant-out needs at least two "
                f"participants whose sessions can be decoded; there are {len(subjects)}"
            )
        sessions = [v for _, v in kept]
        ds = runner.one(pool_task, sessions, cfg)
        index = runner.fetch(index_task, ds, sessions)
        jobs: list[tuple[str, str | None, list[int]]] = []
        for name in cfg.decoders:
            n_perm = _n_perm(name, cfg)
            for s in subjects:
                if _refits(name, cfg):
                    jobs += [(name, s, [p]) for p in range(n_perm + 1)]
                else:
                    jobs.append((name, s, list(range(n_perm + 1))))
            if ev.leaky:
                jobs.append((name, None, []))
        funcs = [fold_task if s is not None else leaky_task for _, s, _ in jobs]
        args = [(ds, n, s, perms, cfg) if s is not None else (ds, n, cfg) for n, s, perms in jobs]
        with prog.step("fits", len(jobs), "fit") as step:
            results = runner.run(funcs, args, step, gpu=True)
        for (n, s, _), (ok, value) in zip(jobs, results):
            if not ok:
                raise RecallLabError(f"{n}, sub-{s or 'all'}: {value}")
    finally:
        where = runner.close()
    entries.update(_figures(subjects, jobs, [v for _, v in results], index, cfg))
    for plan in plans:
        if entries.get(plan.subject, {}).get("status") == "ok":
            entries[plan.subject]["sessions"] = [str(p) for p in plan.paths]
            entries[plan.subject]["channels"] = index["channels"]
    pooled = {
        "decoders": _pooled_figures(jobs, [v for _, v in results], index, cfg),
        "channels": index["channels"],
        "target": index["target"],
        "classes": list(index["codes"]),
        "class_names": index["class_names"],
        "notes": index["notes"],
    }
    if runner.seconds:
        pooled["task_seconds"] = {k: [round(v, 3) for v in t] for k, t in runner.seconds.items()}
    return entries, pooled, where


def _n_perm(name: str, cfg: DecodeConfig) -> int:
    ev = cfg.evaluation
    return ev.n_permutations_refit if _refits(name, cfg) else ev.n_permutations


def _predictions(name, jobs, results, n_rows, participant, codes):
    """(class codes per permutation, the leaky task's result) of decoder ``name``; ``codes``
    are the columns of the fold tasks' probabilities."""
    proba: dict[int, np.ndarray] = {}
    leaky = None
    for (n, s, _), res in zip(jobs, results):
        if n != name:
            continue
        if s is None:
            leaky = res
            continue
        rows = np.flatnonzero(participant == s)
        for p, pr in res.items():
            proba.setdefault(p, np.zeros((n_rows, len(codes)), np.float32))[rows] = pr
    return {p: np.asarray(codes)[pr.argmax(1)] for p, pr in proba.items()}, leaky


def _figures(subjects, jobs, results, index, cfg) -> dict[str, dict[str, Any]]:
    """Per participant and decoder: honest scores, their permutation null and p, the leaky
    score, the confusion matrix: the entries the study report and group statistics read."""
    from sklearn.metrics import confusion_matrix

    from decoding.evaluation import score_predictions

    y, session, participant = index["y"], index["session"], index["participant"]
    codes = list(index["codes"])
    entries = {
        s: {"status": "ok", "n_windows": int((participant == s).sum()), "decoders": {}}
        for s in subjects
    }
    for name in cfg.decoders:
        n_perm = _n_perm(name, cfg)
        preds, leaky = _predictions(name, jobs, results, len(y), participant, codes)
        shifted = {p: shifted_labels(y, session, p, cfg) for p in range(1, n_perm + 1)}
        for s in subjects:
            r = participant == s
            f1, bacc = score_predictions(y[r], preds[0][r])
            null = [score_predictions(shifted[p][r], preds[p][r]) for p in range(1, n_perm + 1)]
            null_f1 = [v[0] for v in null]
            entries[s]["decoders"][name] = {
                "split": "participants",
                "f1_weighted": f1,
                "balanced_accuracy": bacc,
                "chance_f1_weighted": float(np.mean(null_f1)) if null else None,
                "chance_balanced_accuracy": float(np.mean([v[1] for v in null])) if null else None,
                "p_value": (1 + sum(v >= f1 for v in null_f1)) / (n_perm + 1) if null else None,
                "n_permutations": n_perm,
                "null_f1_weighted": null_f1,
                "leaky_f1_weighted": (
                    score_predictions(y[r], leaky["pred"][r])[0] if leaky else None
                ),
                "leaky_k_neighbors": leaky["k"].get(s) if leaky else None,
                "confusion": confusion_matrix(y[r], preds[0][r], labels=codes).tolist(),
                "classes": codes,
                "class_names": index["class_names"],
            }
    return entries


def _pooled_figures(jobs, results, index, cfg) -> dict[str, Any]:
    """Scores over every participant's rows at once, as RYM's mean hides nothing here; the
    chance figures are the same scores of the shifted labels (about 1/k for k balanced
    classes: 0.2 for EAV's five emotions), never an assumed 1/3."""
    from sklearn.metrics import confusion_matrix

    from decoding.evaluation import score_predictions

    y, session, participant = index["y"], index["session"], index["participant"]
    codes = list(index["codes"])
    out: dict[str, Any] = {}
    for name in cfg.decoders:
        n_perm = _n_perm(name, cfg)
        preds, leaky = _predictions(name, jobs, results, len(y), participant, codes)
        f1, bacc = score_predictions(y, preds[0])
        both = [score_predictions(shifted_labels(y, session, p, cfg), preds[p]) for p in preds if p]
        null = [v[0] for v in both]
        out[name] = {
            "f1_weighted": f1,
            "balanced_accuracy": bacc,
            "chance_f1_weighted": float(np.mean(null)) if null else None,
            "chance_balanced_accuracy": float(np.mean([v[1] for v in both])) if both else None,
            "p_value": (1 + sum(v >= f1 for v in null)) / (n_perm + 1) if null else None,
            "n_permutations": n_perm,
            "confusion": confusion_matrix(y, preds[0], labels=codes).tolist(),
            "leaky_f1_weighted": score_predictions(y, leaky["pred"])[0] if leaky else None,
            "leaky_multi_session": leaky["multi_session"] if leaky else None,
            "leaky_note": leaky.get("note") if leaky else None,
        }
    return out


class _Runner:
    """Runs tasks here (serially) or on a Dask client, the same way for both."""

    def __init__(self, connect: Callable[[], tuple[Any, Any, str]] | None, prog: Progress):
        self.prog = prog
        self.client, self.cluster, self.where = None, None, "serial"
        if connect is not None:
            self.client, self.cluster, self.where = connect()
        self.futures: list[Any] = []
        self.seconds: dict[str, list[float]] = {}  # per task kind, when run here
        self.gpu = False
        if self.client is not None:
            workers = self.client.scheduler_info().get("workers", {}).values()
            self.gpu = any("GPU" in (w.get("resources") or {}) for w in workers)

    def _submit(self, func, args, gpu: bool = False):
        key = f"recall-lab-{func.__name__}-{os.getpid()}-{time.time_ns()}"
        extra = {"resources": {"GPU": 1}} if gpu and self.gpu else {}
        fut = self.client.submit(func, *args, key=key, retries=2, pure=False, **extra)
        self.futures.append(fut)
        return fut

    def run(self, funcs, args_list, step, gpu: bool = False) -> list[tuple[bool, Any]]:
        """``funcs[i](*args_list[i])`` for each i: ``(True, result)`` or ``(False, why)``.
        On Dask the result of a :func:`load_task` stays on the workers (its future is
        returned) to feed the tasks after it; a cancel stops everything at once."""
        out: list[tuple[bool, Any]] = []
        if self.client is None:
            for f, a in zip(funcs, args_list):
                self.prog.check()
                t0 = time.perf_counter()
                out.append(_attempt(lambda f=f, a=a: f(*a)))
                self.seconds.setdefault(f.__name__, []).append(time.perf_counter() - t0)
                step.update(1)
            return out
        from distributed import as_completed

        futs = [self._submit(f, a, gpu) for f, a in zip(funcs, args_list)]
        done: dict[str, tuple[bool, Any]] = {}
        for fut in as_completed(futs):
            self.prog.check()
            ok, value = _attempt(fut.result)
            keep = fut if ok and fut.key.startswith("recall-lab-load_task") else value
            done[fut.key] = (ok, keep)
            step.update(1)
        return [done[f.key] for f in futs]

    def one(self, func, *args):
        return func(*args) if self.client is None else self._submit(func, args)

    def fetch(self, func, *args):
        return func(*args) if self.client is None else self._submit(func, args).result()

    def close(self) -> str:
        if self.client is not None:
            try:
                self.client.cancel(self.futures)
            finally:
                self.client.close()
                if self.cluster is not None:
                    self.cluster.close()
        return self.where


def _attempt(call: Callable[[], Any]) -> tuple[bool, Any]:
    """``(True, call())``, or ``(False, one line)`` when it failed; a cancel goes on up."""
    try:
        return True, call()
    except Cancelled:
        raise
    except Exception as exc:
        return False, (
            str(exc) if isinstance(exc, RecallLabError) else f"{type(exc).__name__}: {exc}"
        )
