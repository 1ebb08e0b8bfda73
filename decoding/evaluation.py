"""Evaluation without leakage: blocked or grouped splits, permutation chance, and RYM's
leaky protocol beside it for comparison.

Honest protocol, per decoder:

1. Split the windows into folds that share nothing: contiguous blocks in time (with
   ``gap`` seconds dropped from training on both sides of each test block, more than the
   window length plus the signal's autocorrelation), or held-out memories, sessions or
   participants.
2. In each fold, fit the representation (e.g. the CEBRA embedding) and the read-out on the
   training windows only, and predict the test windows. Every window is predicted once, by a
   model that never saw it.
3. Weighted F1, balanced accuracy and accuracy over all predicted windows, and the confusion
   matrix, for the run's classes (``Dataset.classes``: valence's three or EAV's five emotions).
4. Chance: repeat 1-3 with the label sequence circularly shifted against the EEG (per session,
   by at least ``min_shift`` of its length). A shift keeps the labels' temporal structure
   (chunk lengths, class balance, autocorrelation) and breaks only their relation to the EEG.
   The chance level is the mean of this null distribution; ``p = (k + 1) / (n + 1)`` where
   ``k`` of ``n`` shifted runs score at least the real one.

Leaky protocol (RYM): fit the representation once on all windows with all labels, including
the test windows', then cross-validate the kNN read-out only. It is reported beside the honest
figure, marked leaky, so users see how much of a published figure the leak can explain.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError
from decoding.config import DecodeConfig
from decoding.decoders import Decoder, make_decoder
from decoding.labels import VALENCE_CLASSES, ClassSet


@dataclass
class Dataset:
    """Windows of one or more sessions, ready for evaluation.

    ``X`` ``[windows x features]``, ``y`` class codes (of ``classes``), ``times`` LSL seconds
    of window centres, ``session`` index into ``session_ids``, ``participant`` and ``memory``
    per window.
    """

    X: np.ndarray
    y: np.ndarray
    times: np.ndarray
    session: np.ndarray
    participant: np.ndarray
    memory: np.ndarray
    session_ids: list[str]
    window_length: float = 1.0
    feature_names: list[str] = field(default_factory=list)
    clip: np.ndarray | None = None  # listening block's clip per window ("" elsewhere)
    clip_offset: np.ndarray | None = None  # seconds from the clip's sound start
    #: Per-window inputs some decoders learn from besides the EEG (``music``: the tagger
    #: embedding of the music the window heard); never features of the other decoders.
    side: dict[str, np.ndarray] = field(default_factory=dict)
    library: Any = None  # the music library of the listening blocks, when loaded
    #: What ``y`` codes (``labels.target``): valence by default, or EAV's five emotions.
    classes: ClassSet = VALENCE_CLASSES
    #: What pooling and adding the side inputs found that a reader should know.
    notes: list[str] = field(default_factory=list)


@dataclass
class Fold:
    """Window indices to train on and to test on."""

    train: np.ndarray
    test: np.ndarray


@dataclass
class DecoderResult:
    """What one decoder achieved."""

    name: str
    split: str
    proba: np.ndarray  # [windows x classes], NaN where never tested
    fold: np.ndarray  # test fold of each window, -1 if never tested
    f1: float
    balanced_accuracy: float
    chance_f1: float
    chance_balanced_accuracy: float
    p_value: float
    p_value_balanced_accuracy: float
    null_f1: list[float]
    leaky_f1: float | None
    n_windows_tested: int
    confusion: list[list[int]]
    loss_history: list[float] = field(default_factory=list)
    leaky_representation: Decoder | None = None
    leaky_embedding: np.ndarray | None = None
    classes: ClassSet = VALENCE_CLASSES  # the columns of proba, rows of confusion

    @property
    def predicted(self) -> np.ndarray:
        out = np.zeros(self.proba.shape[0], np.int8)
        ok = self.fold >= 0
        out[ok] = np.asarray(self.classes.codes)[self.proba[ok].argmax(axis=1)]
        return out

    @property
    def accuracy(self) -> float:
        """Fraction of tested windows decoded as their class (the trace of the confusion)."""
        cm = np.asarray(self.confusion, float)
        return float(np.trace(cm) / cm.sum()) if cm.sum() else float("nan")

    def metrics(self) -> dict:
        return {
            "split": self.split,
            "f1_weighted": self.f1,
            "balanced_accuracy": self.balanced_accuracy,
            "chance_f1_weighted": self.chance_f1,
            "chance_balanced_accuracy": self.chance_balanced_accuracy,
            "p_value": self.p_value,
            "p_value_balanced_accuracy": self.p_value_balanced_accuracy,
            "n_permutations": len(self.null_f1),
            "null_f1_weighted": self.null_f1,
            "leaky_f1_weighted": self.leaky_f1,
            "leaky_protocol": "representation fitted on all windows and labels (RYM); LEAKY",
            "n_windows_tested": self.n_windows_tested,
            "confusion": self.confusion,
            "classes": list(self.classes.codes),
            "class_names": list(self.classes.names),
            "target": self.classes.target,
            "accuracy": self.accuracy,
        }


def choose_split(ds: Dataset, split: str) -> str:
    """Resolve ``auto``: participants if several, else sessions if several, else blocks."""
    if split != "auto":
        return split
    if len(set(ds.participant)) > 1:
        return "participants"
    if len(ds.session_ids) > 1:
        return "sessions"
    return "blocks"


def make_folds(ds: Dataset, split: str, n_folds: int, gap: float) -> list[Fold]:
    """Folds for ``split``; blocks and memories drop ``gap`` s around the test windows from
    training (within the same session)."""
    n = len(ds.y)
    idx = np.arange(n)
    if split in ("sessions", "participants"):
        groups = ds.session if split == "sessions" else ds.participant
        values = list(dict.fromkeys(groups.tolist()))
        if len(values) < 2:
            raise RecallLabError(
                f"evaluation.split {split}: needs at least two {split}; got {len(values)}"
            )
        return [Fold(idx[groups != v], idx[groups == v]) for v in values]
    if split == "memories":
        mems = [m for m in dict.fromkeys(ds.memory.tolist()) if m]
        if len(mems) < 2:
            raise RecallLabError(
                "evaluation.split memories: the sessions have fewer than two recall phases with "
                "memory ids; use split: blocks"
            )
        tests = [idx[ds.memory == m] for m in mems]
    elif split == "blocks":
        tests = [[] for _ in range(n_folds)]
        for s in np.unique(ds.session):
            order = idx[ds.session == s][np.argsort(ds.times[ds.session == s], kind="stable")]
            if len(order) < n_folds * 4:
                raise RecallLabError(
                    f"session {ds.session_ids[s]} has {len(order)} windows: too short for "
                    f"{n_folds} folds (record longer or lower evaluation.n_folds)"
                )
            for k, block in enumerate(np.array_split(order, n_folds)):
                tests[k].extend(block.tolist())
        tests = [np.asarray(t, int) for t in tests]
    else:
        raise RecallLabError(f"evaluation.split: unknown split {split!r}")
    folds = []
    half = ds.window_length / 2
    for test in tests:
        keep = np.ones(n, bool)
        keep[test] = False
        for s in np.unique(ds.session[test]):
            ts = ds.times[test][ds.session[test] == s]
            lo, hi = ts.min() - half - gap - half, ts.max() + half + gap + half
            near = (ds.session == s) & (ds.times > lo) & (ds.times < hi)
            keep &= ~near
        folds.append(Fold(idx[keep], np.sort(test)))
    return folds


def circular_shift(y: np.ndarray, session: np.ndarray, rng, min_shift: float) -> np.ndarray:
    """``y`` circularly shifted within each session by a random amount (block structure kept)."""
    out = y.copy()
    for s in np.unique(session):
        sel = np.flatnonzero(session == s)
        n = sel.size
        lo = max(1, int(min_shift * n))
        shift = int(rng.integers(lo, max(lo + 1, n - lo)))
        out[sel] = np.roll(y[sel], shift)
    return out


def score_predictions(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Weighted F1 and balanced accuracy of ``pred`` against the true labels ``y``.

    Balanced accuracy is the mean recall over the classes present in ``y``; a prediction of
    a class that never occurs there (a held-out participant who never reported it) counts as
    a miss, and sklearn's warning about it is not passed on to the user.
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score, f1_score

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        bacc = float(balanced_accuracy_score(y, pred))
    return float(f1_score(y, pred, average="weighted", zero_division=0)), bacc


def fit_representation(dec: Decoder, ds: Dataset, rows: np.ndarray, y: np.ndarray) -> Decoder:
    """``dec.fit_representation`` on the windows ``rows`` with labels ``y``, handing it the
    side inputs it declares (e.g. the music the windows heard) for the same rows only."""
    dec.feature_names = list(ds.feature_names)
    import inspect

    names = getattr(dec, "side_inputs", ())
    if not names:
        if "groups" in inspect.signature(dec.fit_representation).parameters:
            return dec.fit_representation(ds.X[rows], y, groups=ds.session[rows])
        return dec.fit_representation(ds.X[rows], y)
    missing = [n for n in names if n not in ds.side]
    if missing:
        raise RecallLabError(f"decoder {dec.name} needs {', '.join(missing)} for every window")
    side = {n: ds.side[n][rows] for n in names}
    # The session of each row, so early stopping keeps a validation block in every session.
    return dec.fit_representation(ds.X[rows], y, side=side, groups=ds.session[rows])


def transform(dec: Decoder, ds: Dataset, rows: np.ndarray) -> np.ndarray:
    """``dec.transform`` of the windows ``rows``, with their side inputs for decoders whose
    representation reads them (the multimodal fusion's audio and video), never others'."""
    import inspect

    names = getattr(dec, "side_inputs", ())
    if names and "side" in inspect.signature(dec.transform).parameters:
        return dec.transform(ds.X[rows], side={n: ds.side[n][rows] for n in names})
    return dec.transform(ds.X[rows])


def _cross_validate(
    ds: Dataset,
    y: np.ndarray,
    folds: list[Fold],
    factory: Callable[[], Decoder],
    cache: list | None,
    tick: Callable[[], None],
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Out-of-fold probabilities. ``cache`` holds (decoder, Z_train, Z_test) per fold for
    label-free representations: reused across permutations (they never saw the labels)."""
    proba = np.full((len(y), len(ds.classes)), np.nan, np.float32)
    fold_of = np.full(len(y), -1, np.int16)
    loss: list[float] = []
    for k, f in enumerate(folds):
        if cache is not None and len(cache) > k:
            dec, z_tr, z_te = cache[k]
        else:
            dec = factory()
            fit_representation(dec, ds, f.train, y[f.train])
            z_tr, z_te = transform(dec, ds, f.train), transform(dec, ds, f.test)
            if cache is not None:
                cache.append((dec, z_tr, z_te))
        dec.fit_readout(z_tr, y[f.train])
        proba[f.test] = dec.predict_proba_from(z_te)
        fold_of[f.test] = k
        if k == 0:
            loss = list(dec.loss_history)
        tick()
    return proba, fold_of, loss


def _n_jobs(requested: int | None, n_tasks: int) -> int:
    import os

    return max(1, min(requested or os.cpu_count() or 1, n_tasks))


def _null_scores(
    ds: Dataset,
    y_perm: np.ndarray,
    folds: list[Fold],
    name: str,
    cfg: DecodeConfig,
    cache: list | None = None,
    tick: Callable[[], None] | None = None,
) -> tuple[float, float]:
    """Cross-validated scores with shifted labels ``y_perm`` (one point of the null)."""

    def factory() -> Decoder:
        return make_decoder(name, cfg, cfg.evaluation.seed)

    p_perm, f_perm, _ = _cross_validate(
        ds, y_perm, folds, factory, cache, tick if tick is not None else (lambda: None)
    )
    ok = f_perm >= 0
    codes = np.asarray(ds.classes.codes)
    return score_predictions(y_perm[ok], codes[np.nan_to_num(p_perm[ok]).argmax(1)])


def _null_scores_in_worker(
    ds: Dataset, y_perm: np.ndarray, folds: list[Fold], name: str, cfg: DecodeConfig
) -> tuple[float, float]:
    """:func:`_null_scores` in a worker process: one torch thread, as many workers as cores."""
    import torch

    torch.set_num_threads(1)
    return _null_scores(ds, y_perm, folds, name, cfg)


def evaluate_decoder(
    ds: Dataset,
    name: str,
    cfg: DecodeConfig,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> DecoderResult:
    """Honest cross-validation, permutation chance and the leaky RYM protocol for one decoder.

    ``progress(description, total)`` returns a function to call after each fitted fold.
    """
    from sklearn.metrics import confusion_matrix

    ev = cfg.evaluation
    classes_present = np.unique(ds.y)
    if classes_present.size < 2 and ds.classes.target == "valence":
        raise RecallLabError(
            "the valence reports give only one class "
            f"({', '.join(str(c) for c in classes_present)}): decoding needs at least two "
            "(e.g. positive presses and neutral time)"
        )
    if classes_present.size < 2:
        raise RecallLabError(
            f"the trials give only one {ds.classes.target} "
            f"({', '.join(ds.classes.name_of(c) for c in classes_present)}): decoding needs at "
            "least two"
        )
    codes = np.asarray(ds.classes.codes)
    split = choose_split(ds, ev.split)
    folds = make_folds(ds, split, ev.n_folds, ev.gap)
    for k, f in enumerate(folds):
        if f.train.size < 10:
            raise RecallLabError(
                f"fold {k + 1} leaves {f.train.size} training windows after the {ev.gap:g} s "
                "gap: record longer, lower evaluation.gap or evaluation.n_folds"
            )
    probe = make_decoder(name, cfg, ev.seed)
    refit = not probe.label_free_representation
    n_perm = ev.n_permutations_refit if refit else ev.n_permutations
    n_fits = len(folds) * (1 + (n_perm if refit else 0)) + int(ev.leaky)
    tick = progress(name, n_fits) if progress else (lambda: None)

    def factory() -> Decoder:
        return make_decoder(name, cfg, ev.seed)

    cache: list | None = None if refit else []
    proba, fold_of, loss = _cross_validate(ds, ds.y, folds, factory, cache, tick)
    tested = fold_of >= 0
    pred = codes[np.nan_to_num(proba[tested]).argmax(axis=1)]
    f1, bacc = score_predictions(ds.y[tested], pred)

    rng = np.random.default_rng(ev.seed + 7919)
    shifted = [circular_shift(ds.y, ds.session, rng, ev.min_shift) for _ in range(n_perm)]
    n_jobs = _n_jobs(ev.n_jobs, n_perm) if refit else 1
    if n_jobs > 1:
        # Each refit is independent and single-threaded torch is fastest on small machines,
        # so the shifts run in worker processes, one per core.
        from joblib import Parallel, delayed

        runs = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(_null_scores_in_worker)(ds, y_perm, folds, name, cfg) for y_perm in shifted
        )
        null = []
        for scores in runs:
            null.append(scores)
            for _ in folds:
                tick()
    else:
        null = [
            _null_scores(ds, y_perm, folds, name, cfg, cache, tick if refit else None)
            for y_perm in shifted
        ]
    null_f1 = [v[0] for v in null]
    null_bacc = [v[1] for v in null]
    p_f1 = (1 + sum(v >= f1 for v in null_f1)) / (n_perm + 1)
    p_bacc = (1 + sum(v >= bacc for v in null_bacc)) / (n_perm + 1)

    leaky_f1, leaky_rep, leaky_z = None, None, None
    if ev.leaky:
        leaky_rep = fit_representation(factory(), ds, np.arange(len(ds.y)), ds.y)
        leaky_z = transform(leaky_rep, ds, np.arange(len(ds.y)))
        # The same model, completed with its read-out, is the one saved for later use on new
        # sessions: fitting on everything is right for deployment, wrong for evaluation.
        leaky_rep.fit_readout(leaky_z, ds.y)
        leaky_folds = (
            make_folds(ds, "participants", ev.n_folds, 0.0)
            if len(set(ds.participant)) > 1
            else folds
        )
        lp = np.full(len(ds.y), -9, np.int8)
        for f in leaky_folds:
            # The decoder's own read-out (kNN for the CEBRA decoders, as in RYM).
            readout = copy.copy(leaky_rep)  # shares the fitted representation
            readout.fit_readout(leaky_z[f.train], ds.y[f.train])
            proba_f = readout.predict_proba_from(leaky_z[f.test])
            lp[f.test] = codes[proba_f.argmax(1)]
        ok = lp != -9
        leaky_f1 = score_predictions(ds.y[ok], lp[ok])[0]
        tick()

    cm = confusion_matrix(ds.y[tested], pred, labels=list(ds.classes.codes)).tolist()
    return DecoderResult(
        name=name,
        split=split,
        proba=proba,
        fold=fold_of,
        f1=f1,
        balanced_accuracy=bacc,
        chance_f1=float(np.mean(null_f1)) if null_f1 else float("nan"),
        chance_balanced_accuracy=float(np.mean(null_bacc)) if null_bacc else float("nan"),
        p_value=float(p_f1),
        p_value_balanced_accuracy=float(p_bacc),
        null_f1=[float(v) for v in null_f1],
        leaky_f1=leaky_f1,
        n_windows_tested=int(tested.sum()),
        confusion=cm,
        loss_history=loss,
        leaky_representation=leaky_rep,
        leaky_embedding=leaky_z,
        classes=ds.classes,
    )
