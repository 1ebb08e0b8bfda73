"""Decoders of valence from EEG window features, behind one sklearn-style interface.

Every decoder is a representation (``fit_representation`` / ``transform``) followed by a
read-out (``fit_readout`` / ``predict_proba_from``); ``fit``, ``transform``, ``predict`` and
``predict_proba`` chain them as sklearn users expect. The split lets the evaluation harness
(``decoding/evaluation.py``) fit each part on training data only, reuse a label-free
representation across permutations, and run the RYM protocol (representation fitted on all
data) beside the honest one. New decoders (an LSTM-attention encoder trained with music
supervision, a transformer fusing EEG, audio and video) subclass :class:`Decoder` and register
in :data:`DECODERS`.

Classes are the run's class codes (:attr:`Decoder.class_codes`, set by :func:`make_decoder`
from ``labels.target``): the valence codes -1, 0, 1 (negative, neutral, positive) by default,
EAV's five emotion codes 0-4 with ``labels.target: emotion``. ``predict_proba`` always returns
one column per code, in that order, even if a class was absent in training.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from decoding.labels import CLASS_CODES

if TYPE_CHECKING:
    from decoding.config import DecodeConfig


def _full_proba(
    classes: np.ndarray, proba: np.ndarray, codes: tuple[int, ...] = CLASS_CODES
) -> np.ndarray:
    """``proba`` (columns in the order of the fitted ``classes``) spread onto one column per
    code of ``codes``; a code absent in training gets probability 0."""
    out = np.zeros((proba.shape[0], len(codes)), np.float32)
    for j, c in enumerate(classes):
        out[:, codes.index(int(c))] = proba[:, j]
    return out


class Decoder:
    """Base class: a representation followed by a read-out, sklearn style.

    Attributes
    ----------
    name
        Registry name, e.g. ``cebra_behavior_knn``.
    label_free_representation
        True if ``fit_representation`` ignores the labels (then the harness may reuse it
        across label permutations: it cannot have learned them).
    loss_history
        Training loss per iteration of the last representation fit (empty if none).
    """

    name = "decoder"
    label_free_representation = True
    #: Per-window inputs besides the EEG that ``fit_representation`` takes as ``side=``.
    side_inputs: tuple[str, ...] = ()
    #: Column names of ``X`` (set by the harness before fitting).
    feature_names: list[str] | None = None
    #: The class codes of the run, one probability column each (:func:`make_decoder` sets
    #: them from ``labels.target``).
    class_codes: tuple[int, ...] = CLASS_CODES

    def __init__(self) -> None:
        self.loss_history: list[float] = []

    # representation -------------------------------------------------------------------
    def fit_representation(self, X: np.ndarray, y: np.ndarray) -> Decoder:
        raise NotImplementedError

    def transform(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # read-out -----------------------------------------------------------------------------
    def fit_readout(self, Z: np.ndarray, y: np.ndarray) -> Decoder:
        raise NotImplementedError

    def predict_proba_from(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # sklearn facade ----------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray) -> Decoder:
        """Fit representation and read-out on ``X`` (windows x features), ``y`` (class codes)."""
        self.fit_representation(X, y)
        return self.fit_readout(self.transform(X), y)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities of the classes :attr:`class_codes` ``[windows x classes]``."""
        return self.predict_proba_from(self.transform(X))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted class codes (of :attr:`class_codes`)."""
        return np.asarray(self.class_codes, np.int8)[self.predict_proba(X).argmax(axis=1)]

    def save(self, path: Path) -> list[Path]:
        """Save fitted parts under ``path`` (a file stem); returns the files written."""
        return []


def sqrt_k(n: int) -> int:
    """RYM's number of neighbours for ``n`` training rows: sqrt(n) rounded, and if that is
    even, the odd neighbour on the side of sqrt(n) (so no vote between two classes ties)."""
    root = float(np.sqrt(max(n, 1)))
    k = round(root)
    if k % 2 == 0:
        k += 1 if k < root else -1
    return max(1, k)


class _KNNReadout:
    """k-nearest-neighbour read-out, cosine distance by default (CEBRA embeddings live on a
    sphere). ``k`` may be ``"sqrt"`` (:func:`sqrt_k` of the training rows); ``max_train``
    keeps at most that many training rows, evenly spaced."""

    def __init__(self, k: int | str, metric: str = "cosine", max_train: int | None = None):
        self.k, self.metric, self.max_train = k, metric, max_train

    def fit(self, Z: np.ndarray, y: np.ndarray) -> _KNNReadout:
        from sklearn.neighbors import KNeighborsClassifier

        if self.max_train is not None and len(y) > self.max_train:
            keep = np.linspace(0, len(y) - 1, self.max_train).round().astype(int)
            Z, y = Z[keep], y[keep]
        k = sqrt_k(len(y)) if self.k == "sqrt" else int(self.k)
        self.n_neighbors = min(k, len(y))
        self.model = KNeighborsClassifier(
            n_neighbors=self.n_neighbors, metric=self.metric, algorithm="brute"
        )
        self.model.fit(Z, y)
        return self

    def predict_proba(self, Z: np.ndarray, codes: tuple[int, ...] = CLASS_CODES) -> np.ndarray:
        return _full_proba(self.model.classes_, self.model.predict_proba(Z), codes)


@contextlib.contextmanager
def seeded_cebra_samplers(seed: int) -> Iterator[None]:
    """Make CEBRA's samplers reproducible for the duration of the block.

    CEBRA 0.6 seeds each sampler's ``torch.Generator`` from the operating system (its own
    ``HasGenerator`` says seeding "is not fully functional yet"), so CEBRA-Time, whose time
    sampler draws from that generator, gave other embeddings on every run, and a study's
    figures depended on which worker ran a task after which. Here every sampler made in the
    block gets its seed from a generator seeded with ``seed``, in the order they are made.
    """
    import torch
    from cebra.distributions import base

    original = base.HasGenerator.__init__
    seeds = np.random.default_rng(seed)

    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._seed = int(seeds.integers(2**62))
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(self._seed)

    base.HasGenerator.__init__ = init
    try:
        yield
    finally:
        base.HasGenerator.__init__ = original


class CebraKNN(Decoder):
    """CEBRA embedding of standardised features (band power, or EEG samples as in RYM), read
    out by kNN (the RYM decoder).

    Parameters
    ----------
    behavior
        True: CEBRA-Behavior, contrastive on the valence labels. False: CEBRA-Time, contrastive
        on time only (no labels; only the kNN read-out sees them).
    settings
        ``CebraConfig`` fields.
    seed
        Seeds torch and numpy before fitting, so a run is reproducible.
    """

    def __init__(self, behavior: bool, settings: dict[str, Any], seed: int = 0) -> None:
        super().__init__()
        self.behavior = behavior
        self.settings = dict(settings)
        self.seed = seed
        self.name = "cebra_behavior_knn" if behavior else "cebra_time_knn"
        self.label_free_representation = not behavior

    def fit_representation(self, X: np.ndarray, y: np.ndarray) -> CebraKNN:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X)
        Xs = self.scaler.transform(X).astype(np.float32)
        self.model = self._new_model(len(Xs))
        with seeded_cebra_samplers(self.seed):
            if self.behavior:
                # CEBRA's discrete sampler wants non-negative integers: codes -1/0/1 -> 0/1/2
                # (emotion codes 0-4 -> 1-5: still one integer per class).
                self.model.fit(Xs, (np.asarray(y) + 1).astype(np.int64))
            else:
                self.model.fit(Xs)
        self.loss_history = [float(v) for v in self.model.state_dict_["loss"]]
        return self

    def fit_multi_session(self, Xs: list[np.ndarray], ys: list[np.ndarray]) -> list[np.ndarray]:
        """RYM's model: one CEBRA-Behavior fit over several sessions (in a study: one per
        participant), each with its own input layer, aligned through the labels; returns each
        session's embedding. Every session is standardised on its own (no labels used).
        Only for a fit on everything (the leaky protocol): a participant left out has no
        input layer, so the honest figure uses one model on the training participants' pooled
        rows."""
        from sklearn.preprocessing import StandardScaler

        if not self.behavior:
            raise ValueError("CEBRA's multi-session training aligns sessions by their labels")
        self.session_scalers = [StandardScaler().fit(X) for X in Xs]
        inputs = [sc.transform(X).astype(np.float32) for sc, X in zip(self.session_scalers, Xs)]
        self.model = self._new_model(min(len(x) for x in inputs))
        with seeded_cebra_samplers(self.seed):
            self.model.fit(inputs, [(np.asarray(y) + 1).astype(np.int64) for y in ys])
        self.loss_history = [float(v) for v in self.model.state_dict_["loss"]]
        return [self.model.transform(x, session_id=i) for i, x in enumerate(inputs)]

    def _new_model(self, n_rows: int) -> Any:
        import cebra
        import torch

        s = self.settings
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)  # noqa: NPY002 (CEBRA samples from the global generator)
        return cebra.CEBRA(
            model_architecture=s["model_architecture"],
            output_dimension=s["output_dimension"],
            num_hidden_units=s["num_hidden_units"],
            batch_size=min(s["batch_size"], n_rows),
            learning_rate=s["learning_rate"],
            temperature=s["temperature"],
            temperature_mode=s["temperature_mode"],
            max_iterations=s["max_iterations"],
            time_offsets=s["time_offsets"],
            conditional="time_delta" if self.behavior else "time",
            device=s["device"],
            verbose=False,
        )

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.model.transform(self.scaler.transform(X).astype(np.float32))

    def fit_readout(self, Z: np.ndarray, y: np.ndarray) -> CebraKNN:
        s = self.settings
        self.readout = _KNNReadout(
            s["k_neighbors"], s.get("knn_metric", "cosine"), s.get("knn_max_train")
        ).fit(Z, y)
        return self

    def predict_proba_from(self, Z: np.ndarray) -> np.ndarray:
        return self.readout.predict_proba(Z, self.class_codes)

    def save(self, path: Path) -> list[Path]:
        out = Path(f"{path}.{self.name}.pt")
        self.model.save(str(out))
        return [out]


class BandPowerLogReg(Decoder):
    """Baseline without CEBRA: standardised log band power, class-balanced logistic regression."""

    name = "bandpower_logreg"
    label_free_representation = True

    def __init__(self, C: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        self.C, self.seed = C, seed

    def fit_representation(self, X: np.ndarray, y: np.ndarray) -> BandPowerLogReg:
        from sklearn.preprocessing import StandardScaler

        self.scaler = StandardScaler().fit(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.scaler.transform(X)

    def fit_readout(self, Z: np.ndarray, y: np.ndarray) -> BandPowerLogReg:
        from sklearn.dummy import DummyClassifier
        from sklearn.linear_model import LogisticRegression

        if np.unique(y).size < 2:
            # A training block of short sessions can hold one class only (all neutral): the
            # honest prediction from it is that class, not a crash.
            self.readout = DummyClassifier(strategy="most_frequent").fit(Z, y)
            return self
        self.readout = LogisticRegression(
            C=self.C, class_weight="balanced", max_iter=2000, random_state=self.seed
        ).fit(Z, y)
        return self

    def predict_proba_from(self, Z: np.ndarray) -> np.ndarray:
        return _full_proba(self.readout.classes_, self.readout.predict_proba(Z), self.class_codes)

    def save(self, path: Path) -> list[Path]:
        import pickle

        out = Path(f"{path}.{self.name}.pkl")
        out.write_bytes(pickle.dumps({"scaler": self.scaler, "readout": self.readout}))
        return [out]


def _music_supervised(cfg: DecodeConfig, seed: int) -> Decoder:
    from decoding.music_supervised import MusicSupervised

    return MusicSupervised(vars(cfg.music_supervised), seed)


def _fusion(name: str) -> Callable[[DecodeConfig, int], Decoder]:
    def make(cfg: DecodeConfig, seed: int) -> Decoder:
        from decoding.fusion import fusion_decoder

        return fusion_decoder(name, vars(cfg.fusion), seed)

    return make


#: name -> factory(config, seed). Add a decoder here to evaluate it with the same harness.
DECODERS: dict[str, Callable[[DecodeConfig, int], Decoder]] = {
    "cebra_behavior_knn": lambda cfg, seed: CebraKNN(True, vars(cfg.cebra), seed),
    "cebra_time_knn": lambda cfg, seed: CebraKNN(False, vars(cfg.cebra), seed),
    "bandpower_logreg": lambda cfg, seed: BandPowerLogReg(seed=seed),
    "music_supervised": _music_supervised,
    "multimodal_fusion": _fusion("multimodal_fusion"),
    "eeg_only": _fusion("eeg_only"),
    "audio_only": _fusion("audio_only"),
    "video_only": _fusion("video_only"),
}

#: Decoders that learn from per-window inputs besides the EEG (``Dataset.side``), by name.
SIDE_INPUTS: dict[str, tuple[str, ...]] = {
    "music_supervised": ("music",),
    "multimodal_fusion": ("audio", "video", "video_present"),
    "audio_only": ("audio",),
    "video_only": ("video", "video_present"),
}
#: Decoders whose EEG rows are raw windows (``windows.input: raw``).
RAW_EEG = ("multimodal_fusion", "eeg_only", "audio_only", "video_only")


def make_decoder(name: str, cfg: DecodeConfig, seed: int = 0) -> Decoder:
    """A new, unfitted decoder by registry name, predicting the classes of
    ``cfg.labels.target``."""
    from decoding.labels import class_set

    dec = DECODERS[name](cfg, seed)
    dec.class_codes = class_set(cfg.labels.target).codes
    return dec


def learns_from_labels(name: str, cfg: DecodeConfig) -> bool:
    """True when decoder ``name``'s representation learns from the labels (CEBRA-Behavior,
    the music-supervised encoder, the multimodal fusion and its unimodal baselines): every
    permutation of the labels refits it, so it gets ``evaluation.n_permutations_refit``
    permutations instead of ``n_permutations``, as the evaluation harness does."""
    return not make_decoder(name, cfg).label_free_representation
