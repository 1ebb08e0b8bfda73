"""The music-supervised affect encoder (Avramidis et al., ICASSP 2022), in pure PyTorch.

EEG windows become differential entropy (DE) features per channel, band and second
(:func:`de_features`); an LSTM runs over the channels, pools them with attention and maps the
result, through a projection shared with a music branch, to a 32-d affect space. One valence
head, shared by both modalities, is trained on EEG windows and on the tagger embeddings of the
music heard during them; a domain discriminator behind a gradient-reversal layer pushes the two
modalities to be indistinguishable in the shared space. At test time only the EEG branch and
the head are used; :meth:`MusicSupervised.embed_music` places music in the same space (for
retrieval-driven generation).

Differences from the authors' code, on purpose:

- The attention there takes a softmax over a dimension of size one (every weight is 1); here
  it is a real attention pooling: one score per channel step, softmax over the channels,
  weighted sum (``decoding/_music_nets.py``).
- Early stopping uses a validation block cut from the TRAINING rows only (see
  :func:`split_validation`); the decoder never receives test rows.

Torch is imported only when a model is built or loaded: the torch modules live in
``decoding._music_nets`` and are reachable here lazily (``music_supervised.EEGEncoder``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import pickle
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data_schema.errors import ConfigError, RecallLabError
from decoding.decoders import Decoder

if TYPE_CHECKING:
    import torch

#: DE bands of the paper (Hz, [low, high)). 2-4 Hz is the upper delta band.
DE_BANDS: dict[str, tuple[float, float]] = {
    "delta": (2.0, 4.0),
    "theta": (4.0, 7.0),
    "alpha": (7.0, 15.0),
    "beta": (15.0, 23.0),
}

_NET_NAMES = (
    "AttentionPool",
    "CrossModalNet",
    "DomainDiscriminator",
    "EEGEncoder",
    "GradReverse",
    "MusicBranch",
    "grad_reverse",
)

_FORMAT = "recall-lab/music_supervised"
_FORMAT_VERSION = 1


def __getattr__(name: str) -> Any:
    # The torch modules, imported on first use so that this module does not import torch.
    if name in _NET_NAMES:
        from decoding import _music_nets

        return getattr(_music_nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# features ------------------------------------------------------------------------------------
def _band_sos(lo: float, hi: float, sfreq: float, name: str) -> np.ndarray:
    from scipy.signal import butter

    nyquist = sfreq / 2
    if not 0 <= lo < hi or hi >= nyquist:
        raise RecallLabError(
            f"DE band {name} ({lo:g}-{hi:g} Hz) is not a band below the Nyquist frequency "
            f"({nyquist:g} Hz at {sfreq:g} Hz); give low < high < {nyquist:g}"
        )
    if lo == 0:
        return butter(4, hi, btype="lowpass", fs=sfreq, output="sos")
    return butter(4, [lo, hi], btype="bandpass", fs=sfreq, output="sos")


def _band_filtered(data: np.ndarray, sfreq: float, lo: float, hi: float, name: str) -> np.ndarray:
    """``data`` ``[channels x samples]`` band-passed, zero phase (4th-order Butterworth, run
    forwards and backwards), float64."""
    from scipy.signal import sosfiltfilt

    return sosfiltfilt(_band_sos(lo, hi, sfreq, name), np.asarray(data, np.float64), axis=1)


def de_features(
    data: np.ndarray,
    sfreq: float,
    starts: np.ndarray | Sequence[int],
    *,
    length: float = 3.0,
    bands: dict[str, tuple[float, float]] | None = None,
) -> np.ndarray:
    """Differential entropy per window, channel, band and second.

    Each band is filtered once over the whole recording (zero-phase 4th-order Butterworth),
    then each 1-s segment of each window gets ``0.5 * log(2 * pi * e * variance)``, the
    entropy of a Gaussian with the segment's variance (Shi, Jiao & Lu 2013); the variance of
    the zero-mean band signal is its mean square over the segment. The band edges are the
    filter's -3 dB points per pass (-6 dB after both passes), so a narrow band such as 2-4 Hz
    keeps about 90 % of a white signal's in-band power: a constant offset of that band's DE,
    which the decoder's standardisation removes.

    Parameters
    ----------
    data
        Preprocessed EEG ``[channels x samples]`` (volts or microvolts: a unit change only
        shifts every DE by the same constant).
    sfreq
        Sampling rate, Hz. A second is ``round(sfreq)`` samples.
    starts
        Sample index of each window's first sample.
    length
        Window length in whole seconds (3 in the paper).
    bands
        Band name -> (low, high) Hz; default :data:`DE_BANDS`.

    Returns
    -------
    numpy.ndarray
        ``[windows x channels x bands x seconds]`` float32. ``X.reshape(len(X), -1)`` is
        channel-major (channel, then band, then second), the order of
        :func:`de_feature_names`.
    """
    bands = dict(DE_BANDS if bands is None else bands)
    data = np.asarray(data)
    if data.ndim != 2 or not np.isfinite(data).all():
        raise RecallLabError(
            f"de_features needs finite EEG [channels x samples]; got shape {data.shape}"
            + ("" if data.ndim != 2 else " with NaN or inf")
        )
    n_sec = round(length)
    if n_sec < 1 or abs(length - n_sec) > 1e-9:
        raise RecallLabError(f"DE windows are whole seconds; got length {length:g} s")
    if not bands:
        raise RecallLabError("de_features: give at least one band")
    per_sec = round(sfreq)
    starts = np.asarray(starts, np.int64).ravel()
    n_ch, n_samples = data.shape
    if starts.size and (starts.min() < 0 or starts.max() + n_sec * per_sec > n_samples):
        raise RecallLabError(
            f"DE windows of {n_sec} s must lie inside the recording ({n_samples} samples); "
            f"window starts run from {starts.min()} to {starts.max()}"
        )
    # Segment k of window w covers [starts[w] + k * per_sec, + per_sec).
    seg = starts[:, None] + np.arange(n_sec) * per_sec  # [windows x seconds]
    out = np.empty((starts.size, n_ch, len(bands), n_sec), np.float32)
    for b, (name, (lo, hi)) in enumerate(bands.items()):
        x = _band_filtered(data, sfreq, float(lo), float(hi), name)
        # A band-passed signal has zero mean, so a segment's variance is its mean square
        # about zero; subtracting each 1-s segment's own mean would drop part of a 2-4 Hz
        # band's power (a few cycles per segment) and bias its DE low. The recording's mean
        # is removed first: an IIR filter leaves a small offset at the edges.
        x -= x.mean(axis=1, keepdims=True)
        # Sums over any segment from one running sum of squares (in place: a long recording's
        # copies are large): every window and channel at once.
        np.square(x, out=x)
        np.cumsum(x, axis=1, out=x)
        before = np.where(seg > 0, x[:, np.maximum(seg - 1, 0)], 0.0)
        var = (x[:, seg + per_sec - 1] - before) / per_sec  # [channels x windows x seconds]
        # A flat channel has variance 0 (and rounding can make it a hair below); floor it so
        # its DE is a very low number rather than -inf.
        var = np.maximum(var, 1e-30)
        out[:, :, b, :] = (0.5 * np.log(2 * np.pi * np.e * var)).transpose(1, 0, 2)
    return out


def de_feature_names(
    channels: Sequence[str], bands: Sequence[str] | dict[str, Any], seconds: int
) -> list[str]:
    """Column names ``"<channel>:<band>:s<k>"`` (``k`` from 0: seconds into the window) in the
    order of ``de_features(...).reshape(n, -1)``: channel, then band, then second."""
    return [f"{ch}:{b}:s{k}" for ch in channels for b in list(bands) for k in range(seconds)]


_SECOND = re.compile(r"s(\d+)")


def parse_de_layout(feature_names: Sequence[str]) -> tuple[list[str], list[str], int]:
    """Channels, bands and seconds of DE feature names in the :func:`de_feature_names` layout
    (any subset of channels, in that layout); :class:`RecallLabError` for anything else."""
    names = list(feature_names)
    channels: list[str] = []
    bands: list[str] = []
    seconds: list[int] = []
    for n in names:
        parts = n.rsplit(":", 2)
        m = _SECOND.fullmatch(parts[-1]) if len(parts) == 3 else None
        if m is None:
            raise RecallLabError(
                f"music_supervised reads differential-entropy features named "
                f"'<channel>:<band>:s<second>'; got {n!r} (compute features with de_features)"
            )
        ch, band, sec = parts[0], parts[1], int(m.group(1))
        if ch not in channels:
            channels.append(ch)
        if band not in bands:
            bands.append(band)
        if sec not in seconds:
            seconds.append(sec)
    if not names or names != de_feature_names(channels, bands, len(seconds)):
        raise RecallLabError(
            "music_supervised: the feature names are not a full channel x band x second DE "
            f"layout in de_feature_names order ({len(names)} names, {len(channels)} channels, "
            f"{len(bands)} bands, {len(seconds)} seconds)"
        )
    return channels, bands, len(seconds)


# configuration -------------------------------------------------------------------------------
@dataclass
class MusicSupervisedConfig:
    """Settings of the music-supervised encoder; defaults follow the paper."""

    lstm1: int = 128  # units of the first LSTM (over the channels)
    lstm2: int = 256  # units of the second LSTM
    representation: int = 128  # EEG representation and music branch output
    shared: int = 32  # shared affect space
    discriminator_hidden: int = 64
    dropout_eeg: float = 0.2
    dropout_music: float = 0.5
    dropout_head: float = 0.5
    lr: float = 1e-4  # Adam
    batch_size: int = 32
    max_epochs: int = 200
    patience: int = 15  # epochs without a better validation loss before stopping
    # Fraction of each session's training rows, at its end, held out for early stopping.
    val_fraction: float = 0.2
    # Training rows dropped just before each validation block, so that overlapping windows do
    # not share EEG across the two (set to the window overlap in rows; 0 keeps them).
    val_gap_rows: int = 0
    weight_eeg: float = 0.6  # valence loss on EEG windows
    weight_music: float = 0.4  # valence loss on music embeddings
    weight_task: float = 0.9  # both valence losses together
    weight_domain: float = 0.1  # modality discriminator, behind the gradient reversal
    grl_lambda: float = 1.0
    class_weights: bool = True  # weight positives by negatives / positives in the BCE
    device: str = "cuda_if_available"  # "cuda_if_available", "cuda" or "cpu"
    # Torch CPU threads during fit and transform (restored afterwards); None: 1 on machines
    # with fewer than 4 cores, else half the cores (at most 8).
    cpu_threads: int | None = None

    def check(self, where: str = "music_supervised") -> None:
        """Raise :class:`ConfigError` naming the field for values out of range."""
        for f in ("lstm1", "lstm2", "representation", "shared", "discriminator_hidden"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{where}.{f} must be at least 1")
        for f in ("dropout_eeg", "dropout_music", "dropout_head"):
            if not 0 <= getattr(self, f) < 1:
                raise ConfigError(f"{where}.{f} must be in [0, 1)")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr must be > 0")
        if self.batch_size < 2:
            raise ConfigError(f"{where}.batch_size must be at least 2")
        if self.max_epochs < 1 or self.patience < 1:
            raise ConfigError(f"{where}.max_epochs and {where}.patience must be at least 1")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"{where}.val_fraction must be in [0, 1)")
        if self.val_gap_rows < 0:
            raise ConfigError(f"{where}.val_gap_rows must be >= 0")
        for f in ("weight_eeg", "weight_music", "weight_task", "weight_domain", "grl_lambda"):
            if getattr(self, f) < 0:
                raise ConfigError(f"{where}.{f} must be >= 0")
        if self.device not in ("cuda_if_available", "cuda", "cpu"):
            raise ConfigError(f"{where}.device: use cuda_if_available, cuda or cpu")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"{where}.cpu_threads must be >= 1 (or null)")


def checked_settings(cls: type, settings: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """``settings`` completed with the defaults of the config dataclass ``cls`` and checked
    (``cls.check``); unknown fields are one :class:`ConfigError` naming ``where``."""
    known = {f.name for f in dataclasses.fields(cls)}
    given = dict(settings or {})
    unknown = sorted(set(given) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    cfg = cls(**given)
    cfg.check()
    return vars(cfg)


def _settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    return checked_settings(MusicSupervisedConfig, settings, "music_supervised")


def split_validation(
    n: int, groups: np.ndarray | None, val_fraction: float, gap: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to fit on and rows to early-stop on, from the training rows only.

    Within each group (session; one group if ``groups`` is None), rows are taken in the order
    given (time order), and the last ``round(val_fraction * rows_in_group)`` rows are the
    validation block; the ``gap`` rows before it are dropped from both.

    Returns
    -------
    fit, validation
        Row indices (sorted).
    """
    groups = np.zeros(n, np.int64) if groups is None else np.asarray(groups)
    fit: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for g in dict.fromkeys(groups.tolist()):
        rows = np.flatnonzero(groups == g)
        n_val = round(val_fraction * rows.size)
        if n_val == 0:
            fit.append(rows)
            continue
        val.append(rows[rows.size - n_val :])
        fit.append(rows[: max(0, rows.size - n_val - gap)])
    return _sorted_rows(fit), _sorted_rows(val)


def _sorted_rows(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.zeros(0, np.int64)


# the decoder ---------------------------------------------------------------------------------
def resolve_device(want: str, where: str = "music_supervised") -> str:
    """``cuda`` when asked for (``cuda``, ``cuda_if_available``) and present, else ``cpu``;
    ``cuda`` without a device is one error naming ``where``."""
    import torch

    if want in ("cuda_if_available", "cuda") and torch.cuda.is_available():
        return "cuda"
    if want == "cuda":
        raise RecallLabError(f"{where}.device is cuda but torch sees no CUDA device")
    return "cpu"


@contextlib.contextmanager
def torch_scope(
    cpu_threads: int | None, seed: int, device: str, seeded: bool = False
) -> Iterator[None]:
    """Torch threads for a small model's fit (``cpu_threads``; None: 1 on machines with fewer
    than 4 cores, where torch's thread pool slows training many-fold when other processes
    compete, else half the cores, at most 8), and (``seeded``) the global RNGs forked and
    seeded so that weights and dropout are reproducible without changing anyone else's state."""
    import torch

    threads = cpu_threads
    if threads is None:
        cores = os.cpu_count() or 1
        threads = 1 if cores < 4 else min(8, cores // 2)
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        if seeded:
            devices = [torch.cuda.current_device()] if device == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)


class MusicSupervised(Decoder):
    """The music-supervised LSTM-attention encoder as a :class:`Decoder`.

    Representation: the EEG branch into the 32-d shared space (:meth:`transform`). Read-out:
    the shared valence head trained with it (:meth:`fit_readout` keeps it), so the harness's
    leaky protocol, which refits read-outs on subsets, gets the same head every time.

    Before fitting, set :attr:`feature_names` (the dataset's; DE names in the
    :func:`de_feature_names` layout) or pass ``feature_names=``. ``side={"music": M}`` gives
    per window the tagger embedding of the music heard (``[n x D]``; all-NaN rows: none).

    Parameters
    ----------
    settings
        ``MusicSupervisedConfig`` fields (missing ones take their defaults).
    seed
        Seeds weights, dropout and batch order; on CPU two fits with one seed are identical.

    Attributes
    ----------
    notes
        What the last fit did that a reader should know (EEG-only training, no validation).
    loss_history, val_history
        Mean training loss and validation loss per epoch.
    validation_rows
        Indices (into the rows given to the fit) of the early-stopping block.
    best_epoch
        Epoch (from 1) whose weights were kept.
    """

    name = "music_supervised"
    label_free_representation = False
    side_inputs = ("music",)

    def __init__(self, settings: dict[str, Any] | None = None, seed: int = 0) -> None:
        super().__init__()
        self.settings = _settings(settings)
        self.seed = int(seed)
        self.feature_names: list[str] | None = None
        self.notes: list[str] = []
        self.val_history: list[float] = []
        self.validation_rows = np.zeros(0, np.int64)
        self.best_epoch = 0
        self.net: Any = None
        self.music_dim: int | None = None
        self.device = "cpu"  # where the model lives: resolved from settings when built

    # helpers ----------------------------------------------------------------------------------
    @property
    def n_validation_rows(self) -> int:
        """Rows of the last fit's early-stopping block."""
        return int(self.validation_rows.size)

    def _torch_scope(self, seeded: bool = False):
        return torch_scope(self.settings["cpu_threads"], self.seed, self.device, seeded)

    def _checked_features(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, np.float32)
        if X.ndim != 2 or X.shape[1] != len(self.layout_names):
            raise RecallLabError(
                f"music_supervised: expected {len(self.layout_names)} DE features per window "
                f"({len(self.channels)} channels x {len(self.bands)} bands x {self.n_seconds} "
                f"s); got shape {X.shape}"
            )
        if not np.isfinite(X).all():
            raise RecallLabError("music_supervised: the EEG features hold NaN or inf")
        return X

    def _eeg_tensor(self, X: np.ndarray) -> torch.Tensor:
        import torch

        X = self._checked_features(X)
        Xs = (X - self.x_mean) / self.x_scale
        return torch.from_numpy(Xs.reshape(len(Xs), len(self.channels), -1).astype(np.float32))

    def _music_array(self, M: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Music embeddings as float32 ``[n x D]`` and the mask of rows that have music."""
        M = np.asarray(M, np.float32)
        if M.ndim != 2 or M.shape[0] != n:
            raise RecallLabError(
                f"music_supervised: side['music'] must be [windows x D] with one row per EEG "
                f"window ({n}); got shape {M.shape}"
            )
        empty = np.isnan(M).all(axis=1)
        has = ~empty
        if not np.isfinite(M[has]).all():
            raise RecallLabError(
                "music_supervised: side['music'] rows must be all finite (music heard) or all "
                "NaN (no music); some rows are partly NaN or inf"
            )
        return M, has

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RecallLabError("music_supervised: fit the decoder (or load one) first")

    def _build_net(self) -> Any:
        from decoding._music_nets import CrossModalNet

        s = self.settings
        return CrossModalNet(
            len(self.channels),
            len(self.bands) * self.n_seconds,
            self.music_dim,
            lstm1=s["lstm1"],
            lstm2=s["lstm2"],
            representation=s["representation"],
            shared=s["shared"],
            discriminator_hidden=s["discriminator_hidden"],
            dropout_eeg=s["dropout_eeg"],
            dropout_music=s["dropout_music"],
            dropout_head=s["dropout_head"],
        ).to(self.device)

    def _set_layout(self, names: Sequence[str]) -> None:
        self.channels, self.bands, self.n_seconds = parse_de_layout(names)
        self.layout_names = list(names)

    # representation -------------------------------------------------------------------------
    def fit_representation(
        self,
        X: np.ndarray,
        y: np.ndarray,
        side: dict[str, np.ndarray] | None = None,
        *,
        feature_names: Sequence[str] | None = None,
        groups: np.ndarray | None = None,
    ) -> MusicSupervised:
        """Train both branches on the training rows ``X`` ``[n x features]`` with valence codes
        ``y`` (-1/0/1; rows with 0 take no part in the valence losses).

        ``side["music"]`` ``[n x D]``: music tagger embeddings per window, all-NaN rows for
        windows without music (they get the EEG loss only). Without music the model trains on
        EEG alone (see :attr:`notes`). ``groups`` (session per row, rows in time order within
        each) places a validation block at the end of each session's rows
        (:func:`split_validation`); without it, at the end of all rows.
        """
        s = self.settings
        names = feature_names if feature_names is not None else self.feature_names
        if not names:
            raise RecallLabError(
                "music_supervised: set decoder.feature_names to the DE feature names (the "
                "dataset's) before fitting"
            )
        self._set_layout(names)
        X = self._checked_features(X)
        y = np.asarray(y).astype(np.int64).ravel()
        if len(y) != len(X):
            raise RecallLabError(
                f"music_supervised: X [windows x features] and y (one code per window) "
                f"disagree: {X.shape} and {y.shape}"
            )
        if groups is not None and len(groups) != len(X):
            raise RecallLabError(
                f"music_supervised: groups has {len(groups)} rows for {len(X)} windows"
            )
        n = len(X)
        labelled = y != 0
        if np.unique(y[labelled]).size < 2:
            raise RecallLabError(
                "music_supervised needs negative (-1) and positive (1) windows among the "
                f"training rows; got {sorted(set(y[labelled].tolist()))} (neutral windows, 0, "
                "take no part in its valence losses)"
            )
        self.notes = []
        music = None if side is None else side.get("music")
        if music is not None:
            M, has_music = self._music_array(music, n)
            if not has_music.any():
                music = None
        if music is None:
            M, has_music = np.zeros((n, 0), np.float32), np.zeros(n, bool)
            self.notes.append(
                "trained on EEG only: no music embeddings were given (side['music'] absent or "
                "all NaN), so there is no music branch and no domain loss"
            )
        self.music_dim = int(M.shape[1]) if has_music.any() else None

        fit_rows, val_rows = split_validation(n, groups, s["val_fraction"], s["val_gap_rows"])
        self.validation_rows = val_rows
        lab_fit = labelled[fit_rows]
        if np.unique(y[fit_rows][lab_fit]).size < 2:
            raise RecallLabError(
                "music_supervised: after the validation block is set aside, the training rows "
                "hold only one valence class; lower music_supervised.val_fraction or give more "
                "data"
            )
        # Standardise on the rows given (all training rows; no labels are used).
        self.x_mean = X.mean(axis=0)
        sd = X.std(axis=0)
        self.x_scale = np.where(sd > 0, sd, 1.0).astype(np.float32)
        if self.music_dim:
            mm = M[has_music]
            self.m_mean = mm.mean(axis=0)
            msd = mm.std(axis=0)
            self.m_scale = np.where(msd > 0, msd, 1.0).astype(np.float32)
        else:
            self.m_mean = self.m_scale = None

        self.device = resolve_device(s["device"])
        with self._torch_scope(seeded=True):
            net = self._build_net()
            self._train(net, X, y, M, has_music, fit_rows, val_rows)
        net.eval()
        self.net = net
        self.classes_ = np.unique(y)
        return self

    def _train(
        self,
        net: Any,
        X: np.ndarray,
        y: np.ndarray,
        M: np.ndarray,
        has_music: np.ndarray,
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
    ) -> None:
        """Adam on ``fit_rows`` with early stopping on ``val_rows``; ``net`` ends with the
        weights of the best epoch."""
        import torch
        import torch.nn.functional as F

        s, dev = self.settings, self.device
        labelled = y != 0
        Xt = self._eeg_tensor(X).to(dev)
        target = torch.from_numpy((y == 1).astype(np.float32)).to(dev)
        lab_t = torch.from_numpy(labelled).to(dev)
        mus_t = torch.from_numpy(has_music).to(dev)
        if self.music_dim:
            Ms = np.nan_to_num((M - self.m_mean) / self.m_scale).astype(np.float32)
            Mt = torch.from_numpy(Ms).to(dev)

        def pos_weight(rows: np.ndarray) -> torch.Tensor:
            # n_neg / n_pos over the labelled rows: the BCE then counts both classes equally
            # however unbalanced the reports are.
            yy = y[rows][labelled[rows]]
            w = (yy == -1).sum() / max((yy == 1).sum(), 1) if s["class_weights"] else 1.0
            return torch.tensor(float(w) if w > 0 else 1.0, device=dev)

        pw_eeg = pos_weight(fit_rows)
        pw_music = pos_weight(fit_rows[has_music[fit_rows]]) if self.music_dim else pw_eeg

        def bce(logit: torch.Tensor, rows: torch.Tensor, pw: torch.Tensor) -> torch.Tensor:
            """Class-weighted BCE over the labelled ones of ``rows`` (0 if none)."""
            keep = lab_t[rows]
            if not bool(keep.any()):
                return logit.sum() * 0.0
            return F.binary_cross_entropy_with_logits(
                logit[keep], target[rows][keep], pos_weight=pw
            )

        def batch_loss(idx: torch.Tensor) -> torch.Tensor:
            z_e = net.eeg_features(Xt[idx])
            loss = s["weight_task"] * s["weight_eeg"] * bce(net.valence_logit(z_e), idx, pw_eeg)
            mus = mus_t[idx]
            if self.music_dim and bool(mus.any()):
                m_idx = idx[mus]
                z_m = net.music_features(Mt[m_idx])
                loss_m = bce(net.valence_logit(z_m), m_idx, pw_music)
                # The domain loss pairs each music row with its own EEG window: EEG 0, music 1.
                ones = torch.ones_like(z_m[:, 0])
                loss_d = F.binary_cross_entropy_with_logits(
                    net.domain_logit(torch.cat([z_e[mus], z_m]), s["grl_lambda"]),
                    torch.cat([ones * 0, ones]),
                )
                loss = loss + s["weight_task"] * s["weight_music"] * loss_m
                loss = loss + s["weight_domain"] * loss_d
            return loss

        # Rows that feed no loss (neutral and without music) are left out of the batches.
        train_rows = torch.from_numpy(fit_rows[labelled[fit_rows] | has_music[fit_rows]])
        val_idx = torch.from_numpy(val_rows[labelled[val_rows]]).to(dev)
        if not val_idx.numel():
            self.notes.append(
                "no labelled validation rows (val_fraction 0, or a neutral-only block): early "
                "stopping watched the training loss"
            )
        bs = int(s["batch_size"])
        opt = torch.optim.Adam(net.parameters(), lr=s["lr"])
        order = torch.Generator().manual_seed(self.seed)
        best, best_state, wait = math.inf, None, 0
        self.loss_history, self.val_history = [], []
        for epoch in range(int(s["max_epochs"])):
            net.train()
            perm = train_rows[torch.randperm(train_rows.numel(), generator=order)].to(dev)
            total, count = 0.0, 0
            for i in range(0, perm.numel(), bs):
                idx = perm[i : i + bs]
                if idx.numel() < 2:  # BatchNorm cannot train on one row
                    continue
                loss = batch_loss(idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            self.loss_history.append(total / max(count, 1))
            current = self.loss_history[-1]
            if val_idx.numel():
                # The figure that matters at test time: the EEG branch's valence loss.
                net.eval()
                with torch.no_grad():
                    current = float(
                        bce(net.valence_logit(net.eeg_features(Xt[val_idx])), val_idx, pw_eeg)
                    )
                self.val_history.append(current)
            if current < best:
                best, wait, self.best_epoch = current, 0, epoch + 1
                best_state = copy.deepcopy(net.state_dict())
            else:
                wait += 1
                if wait >= s["patience"]:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """EEG windows ``[n x features]`` -> shared affect space ``[n x shared]`` (float32)."""
        import torch

        self._check_fitted()
        Xt = self._eeg_tensor(X)
        out = []
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            for i in range(0, len(Xt), 4096):
                out.append(self.net.eeg_features(Xt[i : i + 4096].to(self.device)).cpu())
        if not out:
            return np.zeros((0, self.settings["shared"]), np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    def attention(self, X: np.ndarray) -> np.ndarray:
        """Attention weights over the channels ``[n x channels]`` (rows sum to 1)."""
        import torch

        self._check_fitted()
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            _, w = self.net.eeg(self._eeg_tensor(X).to(self.device), return_attention=True)
        return w.cpu().numpy()

    def embed_music(self, M: np.ndarray) -> np.ndarray:
        """Music tagger embeddings ``[n x D]`` -> shared affect space ``[n x shared]``;
        all-NaN rows (no music) give NaN rows."""
        import torch

        self._check_fitted()
        if not self.music_dim:
            raise RecallLabError(
                "music_supervised: this model was trained without music, so it cannot embed it"
            )
        M = np.asarray(M, np.float32)
        if M.ndim != 2 or M.shape[1] != self.music_dim:
            raise RecallLabError(
                f"music_supervised: music embeddings must be [n x {self.music_dim}]; got "
                f"shape {M.shape}"
            )
        M, has = self._music_array(M, len(M))
        out = np.full((len(M), self.settings["shared"]), np.nan, np.float32)
        if has.any():
            Ms = ((M[has] - self.m_mean) / self.m_scale).astype(np.float32)
            with self._torch_scope(), torch.no_grad():
                self.net.eval()
                z = self.net.music_features(torch.from_numpy(Ms).to(self.device))
            out[has] = z.cpu().numpy()
        return out

    # read-out ---------------------------------------------------------------------------------
    def fit_readout(self, Z: np.ndarray, y: np.ndarray) -> MusicSupervised:
        """Keep the shared valence head trained with the representation; only remember the
        classes of ``y``."""
        self.classes_ = np.unique(np.asarray(y))
        return self

    def predict_proba_from(self, Z: np.ndarray) -> np.ndarray:
        """Shared-space rows ``[n x shared]`` -> ``[n x 3]``: (1 - p, 0, p), p the head's
        probability of positive valence. The model never predicts neutral."""
        import torch

        self._check_fitted()
        Z = np.asarray(Z, np.float32)
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            p = torch.sigmoid(self.net.valence_logit(torch.from_numpy(Z).to(self.device)))
        p = p.cpu().numpy().astype(np.float32).reshape(-1)
        return np.stack([1 - p, np.zeros_like(p), p], axis=1)

    # persistence ------------------------------------------------------------------------------
    def save(self, path: Path | str) -> list[Path]:
        """Write ``<path>.music_supervised.pt``: weights, settings, feature layout, scalers."""
        import torch

        self._check_fitted()

        def t(a: np.ndarray | None) -> torch.Tensor | None:
            return None if a is None else torch.from_numpy(np.asarray(a, np.float32).copy())

        out = Path(f"{path}.{self.name}.pt")
        torch.save(
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "torch_version": str(torch.__version__),
                "settings": dict(self.settings),
                "seed": self.seed,
                "feature_names": list(self.layout_names),
                "music_dim": self.music_dim,
                "x_mean": t(self.x_mean),
                "x_scale": t(self.x_scale),
                "m_mean": t(self.m_mean),
                "m_scale": t(self.m_scale),
                "classes": [int(c) for c in self.classes_],
                "notes": list(self.notes),
                "loss_history": list(self.loss_history),
                "val_history": list(self.val_history),
                "best_epoch": int(self.best_epoch),
                "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            },
            out,
        )
        return [out]

    @classmethod
    def load(cls, file: Path | str, device: str | None = None) -> MusicSupervised:
        """A fitted decoder from a file :meth:`save` wrote (on ``device``, default the saved
        setting: CUDA when available)."""
        import torch

        try:
            # weights_only: a model file cannot run code when it is read.
            state = torch.load(Path(file), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RecallLabError(
                f"{file}: cannot read a music_supervised model file ({first})"
            ) from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise RecallLabError(f"{file}: not a music_supervised model file")
        if int(state["format_version"]) > _FORMAT_VERSION:
            raise RecallLabError(f"{file}: written by a newer recall-lab; update to read it")
        settings = dict(state["settings"])
        if device is not None:
            settings["device"] = device
        dec = cls(settings, seed=int(state["seed"]))
        dec._set_layout(state["feature_names"])
        dec.feature_names = list(state["feature_names"])
        dec.music_dim = state["music_dim"]

        def a(x: torch.Tensor | None) -> np.ndarray | None:
            return None if x is None else x.numpy().astype(np.float32)

        dec.x_mean, dec.x_scale = a(state["x_mean"]), a(state["x_scale"])
        dec.m_mean, dec.m_scale = a(state["m_mean"]), a(state["m_scale"])
        dec.classes_ = np.asarray(state["classes"])
        dec.notes = list(state["notes"])
        dec.loss_history = list(state["loss_history"])
        dec.val_history = list(state["val_history"])
        dec.best_epoch = int(state["best_epoch"])
        dec.device = resolve_device(dec.settings["device"])
        net = dec._build_net()
        net.load_state_dict(state["state_dict"])
        net.eval()
        dec.net = net
        return dec
