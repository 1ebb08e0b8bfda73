"""EEG + audio + video emotion recognition with a transformer fusion (Yin et al., arXiv
2411.00822), as a :class:`~decoding.decoders.Decoder`.

Three branches each make one token of width ``d_model``:

- EEG: an EEGformer (Wan et al. 2023) on the raw EEG window (``decoding/_fusion_nets.py``,
  :class:`EEGFormer`, which documents where it is simpler than the paper);
- audio: the Audio Spectrogram Transformer of the models folder (key ``audio-tagger``) on the
  log-mel features of the window's voice (``ASTFeatureExtractor`` at 16 kHz), pooled output,
  then a linear map;
- video: the face-expression ViT of the models folder (key ``face-vit``) on ``k`` frames of the
  window, CLS output per frame averaged over the frames, then a linear map.

The three tokens and a learned CLS token go through a shared multi-head self-attention block;
a classifier head reads the CLS output. A modality a window lacks is replaced by a learned
"missing" token, so every window gets a prediction; training drops each present modality with
probability ``modality_dropout`` (never all of a window's modalities) so that the model learns
to predict from any subset. ``eeg_only``, ``audio_only`` and ``video_only`` are the same
architecture reading one modality (the other two always "missing").

Backbones are frozen by default (``audio_trainable_layers = video_trainable_layers = 0``): their
outputs are then computed once per window and cached in the decoder (by the bytes of the
window's audio or frames), so training epochs and repeated ``transform`` calls never run the
backbone twice on the same window. With ``n > 0`` the last ``n`` layers (and the final norm) are
fine-tuned with the rest.

Side inputs
-----------
The EEG comes as ``X``: flattened raw windows, columns named ``"<channel>:t<k>"`` channel-major
(:func:`raw_feature_names`). Audio and video come as ``side``:

- ``side["audio"]``: ``[n x samples]`` float32 mono voice at 16 kHz; an all-NaN row means no
  audio for that window.
- ``side["video"]``: ``[n x k x H x W x 3]`` uint8 frames; ``side["video_present"]``: ``[n]``
  bool (False: no video for that window; its frames are ignored). ``video_present`` is one of
  the declared :attr:`~MultimodalFusion.side_inputs`, because the harness hands a decoder only
  the side keys it declares; called directly without it, every window's video counts as
  present. More than ``frames_per_window`` frames are subsampled evenly.

``fit_representation`` AND ``transform`` take ``side=``: the representation of a window is the
fused token, which depends on that window's audio and video, so the harness must hand
``transform`` the side inputs of the rows it transforms (the test rows' for the test rows).
A decoder that reads EEG only (``eeg_only``) declares no side inputs and needs none.

Early stopping uses a validation block cut from the TRAINING rows only
(:func:`decoding.music_supervised.split_validation`).

Torch and transformers are imported only when a model is built or loaded.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import pickle
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from data_schema.errors import ConfigError, RecallLabError
from decoding.decoders import Decoder, _full_proba
from decoding.labels import CLASS_CODES
from decoding.music_supervised import (
    checked_settings,
    resolve_device,
    split_validation,
    torch_scope,
)

if TYPE_CHECKING:
    import torch

#: The modalities, in token order.
MODALITIES: tuple[str, ...] = ("eeg", "audio", "video")

#: Registry name -> the modalities that decoder reads.
FUSION_DECODERS: dict[str, tuple[str, ...]] = {
    "multimodal_fusion": ("eeg", "audio", "video"),
    "eeg_only": ("eeg",),
    "audio_only": ("audio",),
    "video_only": ("video",),
}

#: Models folder key of each pretrained branch.
BACKBONE_KEYS: dict[str, str] = {"audio": "audio-tagger", "video": "face-vit"}

#: The sample rate of ``side["audio"]`` (the AST's).
AUDIO_RATE = 16000

_FORMAT = "recall-lab/multimodal_fusion"
_FORMAT_VERSION = 1


# configuration -------------------------------------------------------------------------------
@dataclass
class FusionConfig:
    """Settings of the multimodal fusion decoder (section ``fusion`` of the decode config)."""

    d_model: int = 64  # width of every token
    heads: int = 4  # attention heads (EEGformer stages and the fusion block)
    eeg_depth: int = 1  # blocks per EEGformer stage (regional, synchronous, temporal)
    eeg_filters: int = 8  # CNN feature maps per EEG channel
    eeg_kernel: int = 9  # CNN kernel length, samples (odd)
    eeg_segments: int = 4  # time segments (temporal tokens) of an EEG window
    fusion_depth: int = 1  # shared attention blocks over the modality tokens (1 as published)
    dropout: float = 0.1
    lr: float = 3e-4  # AdamW
    weight_decay: float = 1e-2
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10  # epochs without a better validation loss before stopping
    # Fraction of each session's training rows, at its end, held out for early stopping.
    val_fraction: float = 0.2
    # Training rows dropped just before each validation block (overlapping windows).
    val_gap_rows: int = 0
    # Probability of dropping each present modality of a training window (never all of them).
    modality_dropout: float = 0.2
    frames_per_window: int = 4  # video frames read per window (evenly spaced among those given)
    audio_trainable_layers: int = 0  # last AST layers fine-tuned (0: frozen backbone)
    video_trainable_layers: int = 0  # last ViT layers fine-tuned (0: frozen backbone)
    class_weights: bool = True  # weight the cross-entropy by inverse class frequency
    device: str = "cuda_if_available"  # "cuda_if_available", "cuda" or "cpu"
    # Torch CPU threads during fit and transform (restored afterwards); None: 1 on machines
    # with fewer than 4 cores, else half the cores (at most 8).
    cpu_threads: int | None = None
    # The models folder (None: RECALL_LAB_MODELS, the config file, or the default).
    models: str | None = None

    def check(self, where: str = "fusion") -> None:
        """Raise :class:`ConfigError` naming the field for values out of range."""
        for f in (
            "d_model",
            "heads",
            "eeg_depth",
            "eeg_filters",
            "eeg_kernel",
            "eeg_segments",
            "fusion_depth",
            "frames_per_window",
        ):
            if getattr(self, f) < 1:
                raise ConfigError(f"{where}.{f} must be at least 1")
        if self.d_model % self.heads:
            raise ConfigError(
                f"{where}.d_model ({self.d_model}) must be a multiple of {where}.heads "
                f"({self.heads})"
            )
        if self.eeg_kernel % 2 == 0:
            raise ConfigError(f"{where}.eeg_kernel must be odd; got {self.eeg_kernel}")
        for f in ("dropout", "modality_dropout"):
            if not 0 <= getattr(self, f) < 1:
                raise ConfigError(f"{where}.{f} must be in [0, 1)")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ConfigError(f"{where}.lr must be > 0 and {where}.weight_decay >= 0")
        if self.batch_size < 2:
            raise ConfigError(f"{where}.batch_size must be at least 2")
        if self.max_epochs < 1 or self.patience < 1:
            raise ConfigError(f"{where}.max_epochs and {where}.patience must be at least 1")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"{where}.val_fraction must be in [0, 1)")
        for f in ("val_gap_rows", "audio_trainable_layers", "video_trainable_layers"):
            if getattr(self, f) < 0:
                raise ConfigError(f"{where}.{f} must be >= 0")
        if self.device not in ("cuda_if_available", "cuda", "cpu"):
            raise ConfigError(f"{where}.device: use cuda_if_available, cuda or cpu")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"{where}.cpu_threads must be >= 1 (or null)")


def _settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    return checked_settings(FusionConfig, settings, "fusion")


# feature layout ------------------------------------------------------------------------------
def raw_feature_names(channels: Sequence[str], n_samples: int) -> list[str]:
    """Column names ``"<channel>:t<k>"`` (``k`` from 0: sample in the window) of flattened raw
    EEG windows ``[n x channels x samples].reshape(n, -1)``: channel-major."""
    return [f"{ch}:t{k}" for ch in channels for k in range(int(n_samples))]


def parse_raw_layout(feature_names: Sequence[str]) -> tuple[list[str], int]:
    """Channels and samples per window of names in the :func:`raw_feature_names` layout.

    Raises
    ------
    RecallLabError
        The names are not a full channel x sample layout in that order (one line).
    """
    names = list(feature_names)
    channels: list[str] = []
    for n in names:
        ch, sep, t = str(n).rpartition(":")
        if not sep or not ch or not t.startswith("t") or not t[1:].isdigit():
            raise RecallLabError(
                f"multimodal fusion reads raw EEG samples named '<channel>:t<sample>'; got "
                f"{n!r} (name the columns with decoding.fusion.raw_feature_names)"
            )
        if ch not in channels:
            channels.append(ch)
    n_samples = len(names) // max(len(channels), 1)
    if not names or names != raw_feature_names(channels, n_samples):
        raise RecallLabError(
            f"multimodal fusion: the feature names are not a full channel x sample layout in "
            f"raw_feature_names order ({len(names)} names, {len(channels)} channels)"
        )
    return channels, n_samples


# helpers -------------------------------------------------------------------------------------
def _resolve_device(want: str) -> str:
    return resolve_device(want, "fusion")


def _config_digest(folder: Path) -> str:
    """SHA-256 of a model folder's config.json: what a saved decoder checks at load time."""
    return hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bar in a command's output while a model loads."""
    import transformers.utils.logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def load_backbone(modality: str, models: str | Path | None) -> tuple[Any, Any, Path]:
    """The pretrained model and preprocessor of a branch, from the models folder.

    Parameters
    ----------
    modality
        ``"audio"`` (Audio Spectrogram Transformer, key ``audio-tagger``) or ``"video"``
        (face-expression ViT, key ``face-vit``).
    models
        The models folder; ``None`` resolves it as :func:`generation.models.models_dir` does.

    Returns
    -------
    base, preprocessor, folder
        The base transformer (CPU, eval mode), its feature extractor / image processor, and
        the model folder.

    Raises
    ------
    generation.models.ModelMissingError
        The model is not there (the message gives the ``hf download`` command).
    """
    from generation.models import require_model

    key = BACKBONE_KEYS[modality]
    folder = require_model(key, models)
    try:
        with _quiet_transformers():
            if modality == "audio":
                from transformers import ASTFeatureExtractor, ASTForAudioClassification

                with warnings.catch_warnings():
                    # Without torchaudio the Kaldi mel bank is built in numpy, which warns that
                    # the lowest of 128 mel filters are empty (as in Kaldi's own bank).
                    warnings.filterwarnings("ignore", "At least one mel filter has all zero")
                    pre = ASTFeatureExtractor.from_pretrained(folder, local_files_only=True)
                model = ASTForAudioClassification.from_pretrained(folder, local_files_only=True)
            else:
                from transformers import AutoImageProcessor, ViTForImageClassification

                # AutoImageProcessor picks the PIL processor when torchvision is absent.
                pre = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
                model = ViTForImageClassification.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecallLabError(
            f"model {key} in {folder} could not be loaded ({first}); download it again"
        ) from exc
    base = model.base_model
    base.eval()
    return base, pre, folder


def _row_digest(row: np.ndarray) -> bytes:
    a = np.ascontiguousarray(row)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.digest()


# the decoder ---------------------------------------------------------------------------------
class MultimodalFusion(Decoder):
    """EEGformer + AST + ViT tokens fused by shared multi-head attention, as a decoder.

    Representation: the fused CLS token ``[n x d_model]`` (:meth:`transform`, which needs the
    rows' side inputs). Read-out: the classifier head trained with it (:meth:`fit_readout`
    keeps it, so the harness's leaky protocol gets the same head every time).

    Classes follow the labels present in training (``classes_``); :meth:`predict_proba_from`
    maps them onto the run's class columns (:attr:`class_codes`: the valence codes -1/0/1, or
    EAV's five emotion codes 0-4 with ``labels.target: emotion``), :meth:`class_proba_from`
    gives one column per trained class.

    Parameters
    ----------
    settings
        :class:`FusionConfig` fields (missing ones take their defaults).
    modalities
        Which modalities the model reads (a subset of ``("eeg", "audio", "video")``).
    seed
        Seeds weights, dropout, modality dropout and batch order.
    name
        Registry name; default from the modalities (``multimodal_fusion`` for all three).

    Attributes
    ----------
    side_inputs
        The ``side`` keys this decoder needs: ``audio`` if it reads audio, ``video`` and
        ``video_present`` if it reads video.
    notes
        What the last fit did that a reader should know.
    loss_history, val_history
        Mean training loss and validation loss per epoch.
    validation_rows
        Indices (into the rows given to the fit) of the early-stopping block.
    best_epoch
        Epoch (from 1) whose weights were kept.
    """

    name = "multimodal_fusion"
    label_free_representation = False
    side_inputs: tuple[str, ...] = ("audio", "video", "video_present")

    def __init__(
        self,
        settings: dict[str, Any] | None = None,
        modalities: Sequence[str] = MODALITIES,
        seed: int = 0,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = _settings(settings)
        mods = tuple(m for m in MODALITIES if m in set(modalities))
        bad = sorted(set(modalities) - set(MODALITIES))
        if bad or not mods:
            raise ConfigError(
                f"fusion modalities {list(modalities)}: choose one or more of {list(MODALITIES)}"
            )
        self.modalities = mods
        self.seed = int(seed)
        if name is None:
            by_mods = {v: k for k, v in FUSION_DECODERS.items()}
            name = by_mods.get(mods, "fusion_" + "_".join(mods))
        self.name = name
        side: list[str] = []
        if "audio" in mods:
            side.append("audio")
        if "video" in mods:
            side += ["video", "video_present"]
        self.side_inputs = tuple(side)
        self.feature_names: list[str] | None = None
        self.notes: list[str] = []
        self.val_history: list[float] = []
        self.validation_rows = np.zeros(0, np.int64)
        self.best_epoch = 0
        self.net: Any = None
        self.backbones: dict[str, Any] = {}
        self.preprocessors: dict[str, Any] = {}
        self.backbone_digests: dict[str, str] = {}
        self.device = "cpu"
        self.channels: list[str] = []
        self.n_samples = 0
        self._cache: dict[str, dict[bytes, np.ndarray]] = {"audio": {}, "video": {}}

    # helpers ----------------------------------------------------------------------------------
    @property
    def n_validation_rows(self) -> int:
        """Rows of the last fit's early-stopping block."""
        return int(self.validation_rows.size)

    def _torch_scope(self, seeded: bool = False):
        return torch_scope(self.settings["cpu_threads"], self.seed, self.device, seeded)

    def _check_fitted(self) -> None:
        if self.net is None:
            raise RecallLabError(f"{self.name}: fit the decoder (or load one) first")

    def _set_layout(self, names: Sequence[str] | None) -> None:
        if not names:
            raise RecallLabError(
                f"{self.name}: set decoder.feature_names to the raw EEG column names "
                "('<channel>:t<sample>', decoding.fusion.raw_feature_names) before fitting"
            )
        self.channels, self.n_samples = parse_raw_layout(names)
        self.layout_names = list(names)

    def _eeg_array(self, X: np.ndarray) -> np.ndarray:
        """``X`` ``[n x channels*samples]`` -> float32 ``[n x channels x samples]``."""
        X = np.asarray(X, np.float32)
        width = len(self.channels) * self.n_samples
        if X.ndim != 2 or X.shape[1] != width:
            raise RecallLabError(
                f"{self.name}: expected {width} raw EEG values per window ({len(self.channels)} "
                f"channels x {self.n_samples} samples); got shape {X.shape}"
            )
        if not np.isfinite(X).all():
            raise RecallLabError(f"{self.name}: the EEG windows hold NaN or inf")
        return X.reshape(len(X), len(self.channels), self.n_samples)

    def _side_arrays(
        self, side: dict[str, Any] | None, n: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """Audio ``[n x samples]`` float32, video ``[n x k x H x W x 3]`` uint8 (at most
        ``frames_per_window`` frames) and the present mask ``[n x 3]`` (EEG, audio, video)."""
        present = np.zeros((n, len(MODALITIES)), bool)
        present[:, 0] = "eeg" in self.modalities
        audio = video = None
        need = [k for k in ("audio", "video") if k in self.modalities]
        missing = [k for k in need if side is None or k not in side]
        if missing:
            raise RecallLabError(
                f"{self.name} reads {' and '.join(need)}: pass side={{...}} with "
                f"{', '.join(repr(k) for k in missing)} for the same rows as X (all-NaN audio "
                "rows or video_present False for windows without them)"
            )
        if "audio" in self.modalities:
            audio = np.asarray(side["audio"], np.float32)
            if audio.ndim != 2 or audio.shape[0] != n or audio.shape[1] < 1:
                raise RecallLabError(
                    f"{self.name}: side['audio'] must be [windows x samples] at {AUDIO_RATE} Hz "
                    f"with one row per EEG window ({n}); got shape {audio.shape}"
                )
            empty = np.isnan(audio).all(axis=1)
            if not np.isfinite(audio[~empty]).all():
                raise RecallLabError(
                    f"{self.name}: side['audio'] rows must be all finite (voice) or all NaN "
                    "(no audio); some rows are partly NaN or inf"
                )
            present[:, 1] = ~empty
        if "video" in self.modalities:
            video = np.asarray(side["video"])
            if video.ndim != 5 or video.shape[0] != n or video.shape[-1] != 3:
                raise RecallLabError(
                    f"{self.name}: side['video'] must be [windows x frames x H x W x 3] with one "
                    f"row per EEG window ({n}); got shape {video.shape}"
                )
            if video.dtype != np.uint8:
                raise RecallLabError(
                    f"{self.name}: side['video'] must be uint8 RGB frames; got {video.dtype}"
                )
            if "video_present" in side:
                has = np.asarray(side["video_present"])
                if has.shape != (n,) or has.dtype != bool:
                    raise RecallLabError(
                        f"{self.name}: side['video_present'] must be [windows] bool; got "
                        f"{has.dtype} of shape {has.shape}"
                    )
            else:
                has = np.ones(n, bool)
            k, want = video.shape[1], int(self.settings["frames_per_window"])
            if k < 1:
                raise RecallLabError(f"{self.name}: side['video'] holds no frames per window")
            if k > want:
                video = video[:, np.linspace(0, k - 1, want).round().astype(int)]
            present[:, 2] = has
        return audio, video, present

    # backbones --------------------------------------------------------------------------------
    def _load_backbones(self, models: str | Path | None) -> None:
        from decoding._fusion_nets import PretrainedEncoder

        for m in ("audio", "video"):
            if m not in self.modalities or m in self.backbones:
                continue
            base, pre, folder = load_backbone(m, models)
            enc = PretrainedEncoder(base, m, int(self.settings[f"{m}_trainable_layers"]))
            self.backbones[m] = enc.to(self.device)
            self.preprocessors[m] = pre
            self.backbone_digests[m] = _config_digest(folder)

    def _frozen(self, m: str) -> bool:
        return self.backbones[m].trainable_layers == 0

    def _preprocess(self, m: str, rows: np.ndarray) -> torch.Tensor:
        """Raw audio rows ``[b x samples]`` or frames ``[b x k x H x W x 3]`` -> backbone
        input tensor (CPU)."""
        import torch

        pre = self.preprocessors[m]
        if m == "audio":
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "At least one mel filter has all zero")
                out = pre(list(rows), sampling_rate=AUDIO_RATE, return_tensors="np")
            return torch.from_numpy(np.asarray(out["input_values"], np.float32))
        b, k = rows.shape[:2]
        frames = list(rows.reshape(b * k, *rows.shape[2:]))
        pix = np.asarray(pre(images=frames, return_tensors="np")["pixel_values"], np.float32)
        return torch.from_numpy(pix.reshape(b, k, *pix.shape[1:]))

    def _backbone_batch(self, m: str, rows: np.ndarray) -> torch.Tensor:
        """Backbone vectors of ``rows`` on the decoder's device, with gradients where layers
        are trainable."""
        return self.backbones[m](self._preprocess(m, rows).to(self.device))

    def _embed(self, m: str, data: np.ndarray, has: np.ndarray, batch: int = 32) -> np.ndarray:
        """Frozen backbone vectors ``[n x dim]`` of the rows in ``has`` (zeros elsewhere),
        from the cache where the same audio / frames were seen before."""
        import torch

        enc = self.backbones[m]
        out = np.zeros((len(data), enc.dim), np.float32)
        cache = self._cache[m]
        rows = np.flatnonzero(has)
        keys = {int(i): _row_digest(data[i]) for i in rows}
        todo = [i for i in rows if keys[int(i)] not in cache]
        enc.eval()
        with torch.no_grad():
            for s in range(0, len(todo), batch):
                idx = np.asarray(todo[s : s + batch])
                vec = self._backbone_batch(m, data[idx]).float().cpu().numpy()
                for i, v in zip(idx, vec, strict=True):
                    cache[keys[int(i)]] = v
        for i in rows:
            out[i] = cache[keys[int(i)]]
        return out

    # representation -------------------------------------------------------------------------
    def fit_representation(
        self,
        X: np.ndarray,
        y: np.ndarray,
        side: dict[str, np.ndarray] | None = None,
        *,
        feature_names: Sequence[str] | None = None,
        groups: np.ndarray | None = None,
    ) -> MultimodalFusion:
        """Train the branches, the fusion block and the head on the training rows.

        Parameters
        ----------
        X
            Raw EEG windows ``[n x channels*samples]`` (columns named as
            :func:`raw_feature_names`; standardised by the caller).
        y
            Class codes per window; every class present (at least two) gets a head output.
        side
            ``audio``, ``video``, ``video_present`` for the same rows (see the module
            docstring); only those of the modalities this decoder reads are needed.
        feature_names
            Column names of ``X``; default :attr:`feature_names` (the harness sets it).
        groups
            Session per row (rows in time order within each): a validation block at the end
            of each session's rows (:func:`~decoding.music_supervised.split_validation`);
            without it, at the end of all rows.

        Returns
        -------
        MultimodalFusion
            ``self``, fitted.
        """
        s = self.settings
        self._set_layout(feature_names if feature_names is not None else self.feature_names)
        eeg = self._eeg_array(X)
        n = len(eeg)
        y = np.asarray(y).ravel()
        if len(y) != n:
            raise RecallLabError(
                f"{self.name}: X (one row per window) and y (one label per window) disagree: "
                f"{n} and {len(y)}"
            )
        if groups is not None and len(groups) != n:
            raise RecallLabError(f"{self.name}: groups has {len(groups)} rows for {n} windows")
        audio, video, present = self._side_arrays(side, n)
        classes = np.unique(y)
        if classes.size < 2:
            raise RecallLabError(
                f"{self.name} needs at least two classes among the training rows; got "
                f"{classes.tolist()}"
            )
        fit_rows, val_rows = split_validation(n, groups, s["val_fraction"], s["val_gap_rows"])
        if np.unique(y[fit_rows]).size < 2:
            raise RecallLabError(
                f"{self.name}: after the validation block is set aside the training rows hold "
                "one class only; lower fusion.val_fraction or give more data"
            )
        self.validation_rows = val_rows
        self.classes_ = classes
        self.notes = []
        if not val_rows.size:
            self.notes.append(
                "no validation rows (val_fraction 0): early stopping watched the training loss"
            )
        for m, col in (("audio", 1), ("video", 2)):
            if m in self.modalities and not present[fit_rows, col].any():
                self.notes.append(f"no training window has {m}: its token was always 'missing'")
        self._cache = {"audio": {}, "video": {}}
        self.device = _resolve_device(s["device"])
        self._load_backbones(s["models"])
        with self._torch_scope(seeded=True):
            net = self._build_net()
            emb = self._frozen_embeddings(audio, video, present)
            self._set_standardisation(net, emb, audio, video, present, fit_rows)
            target = np.searchsorted(classes, y)
            self._train(net, eeg, target, audio, video, present, emb, fit_rows, val_rows)
        net.eval()
        self.net = net
        return self

    def _build_net(self) -> Any:
        from decoding._fusion_nets import FusionNet

        s = self.settings
        return FusionNet(
            self.modalities,
            len(self.channels),
            self.backbones["audio"].dim if "audio" in self.backbones else None,
            self.backbones["video"].dim if "video" in self.backbones else None,
            len(self.classes_),
            d_model=s["d_model"],
            heads=s["heads"],
            dropout=s["dropout"],
            fusion_depth=s["fusion_depth"],
            eeg={
                "depth": s["eeg_depth"],
                "filters": s["eeg_filters"],
                "kernel": s["eeg_kernel"],
                "segments": s["eeg_segments"],
            },
        ).to(self.device)

    def _frozen_embeddings(
        self, audio: np.ndarray | None, video: np.ndarray | None, present: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Backbone vectors of every window with that modality, for the frozen backbones."""
        out = {}
        for m, data, col in (("audio", audio, 1), ("video", video, 2)):
            if m in self.backbones and self._frozen(m):
                out[m] = self._embed(m, data, present[:, col])
        return out

    def _set_standardisation(
        self,
        net: Any,
        emb: dict[str, np.ndarray],
        audio: np.ndarray | None,
        video: np.ndarray | None,
        present: np.ndarray,
        fit_rows: np.ndarray,
    ) -> None:
        """Mean and scale of each backbone's (initial) output over the training rows that have
        the modality, into the projection's buffers (no labels used)."""
        import torch

        for m, data, col in (("audio", audio, 1), ("video", video, 2)):
            if m not in self.backbones:
                continue
            rows = fit_rows[present[fit_rows, col]]
            if not rows.size:
                continue
            if m in emb:
                e = emb[m][rows]
            else:  # trainable backbone: its output before any fine-tuning
                with torch.no_grad():
                    self.backbones[m].eval()
                    e = np.concatenate(
                        [
                            self._backbone_batch(m, data[rows[i : i + 32]]).float().cpu().numpy()
                            for i in range(0, rows.size, 32)
                        ]
                    )
            sd = e.std(axis=0)
            proj = getattr(net, m)
            proj.mean.copy_(torch.from_numpy(e.mean(axis=0)))
            proj.scale.copy_(torch.from_numpy(np.where(sd > 1e-6, sd, 1.0).astype(np.float32)))

    def _forward(
        self,
        net: Any,
        idx: np.ndarray,
        eeg: np.ndarray,
        audio: np.ndarray | None,
        video: np.ndarray | None,
        present: np.ndarray,
        emb: dict[str, np.ndarray],
    ) -> torch.Tensor:
        """Modality tokens ``[len(idx) x 3 x d_model]`` of the rows ``idx``."""
        import torch

        dev = self.device
        x_eeg = torch.from_numpy(eeg[idx]).to(dev) if net.eeg is not None else None
        vecs: dict[str, torch.Tensor | None] = {"audio": None, "video": None}
        for m, data, col in (("audio", audio, 1), ("video", video, 2)):
            if m not in self.backbones:
                continue
            if m in emb:
                vecs[m] = torch.from_numpy(emb[m][idx]).to(dev)
                continue
            # Trainable backbone: run it on the rows that have the modality only.
            have = np.flatnonzero(present[idx, col])
            v = torch.zeros(len(idx), self.backbones[m].dim, device=dev)
            if have.size:
                v = v.index_put(
                    (torch.from_numpy(have).to(dev),),
                    self._backbone_batch(m, data[idx[have]]).float(),
                )
            vecs[m] = v
        return net.tokens(x_eeg, vecs["audio"], vecs["video"], len(idx))

    def _train(
        self,
        net: Any,
        eeg: np.ndarray,
        target: np.ndarray,
        audio: np.ndarray | None,
        video: np.ndarray | None,
        present: np.ndarray,
        emb: dict[str, np.ndarray],
        fit_rows: np.ndarray,
        val_rows: np.ndarray,
    ) -> None:
        """AdamW on ``fit_rows`` with modality dropout and early stopping on ``val_rows``;
        ``net`` (and the trainable backbone layers) end with the weights of the best epoch."""
        import torch
        import torch.nn.functional as F

        s, dev = self.settings, self.device
        n_classes = len(self.classes_)
        counts = np.bincount(target[fit_rows], minlength=n_classes).astype(np.float64)
        if s["class_weights"]:
            w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
        else:
            w = np.ones(n_classes)
        weight = torch.tensor(w, dtype=torch.float32, device=dev)
        y_t = torch.from_numpy(target.astype(np.int64)).to(dev)
        trainable = [p for m in self.backbones.values() for p in m.parameters() if p.requires_grad]
        params = list(net.parameters()) + trainable
        opt = torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"])
        rng = np.random.default_rng(self.seed)
        p_drop = float(s["modality_dropout"])
        bs = int(s["batch_size"])

        def set_mode(train: bool) -> None:
            net.train(train)
            for m in self.backbones.values():
                m.train(train and m.trainable_layers > 0)

        def loss_of(idx: np.ndarray, mask: np.ndarray) -> torch.Tensor:
            tok = self._forward(net, idx, eeg, audio, video, present, emb)
            z = net.fuse(tok, torch.from_numpy(mask).to(dev))
            return F.cross_entropy(net.logits(z), y_t[idx], weight=weight)

        def snapshot() -> dict[str, Any]:
            return {
                "net": copy.deepcopy(net.state_dict()),
                "backbones": {
                    k: copy.deepcopy(m.state_dict())
                    for k, m in self.backbones.items()
                    if m.trainable_layers
                },
            }

        best, best_state, wait = math.inf, None, 0
        self.loss_history, self.val_history = [], []
        for epoch in range(int(s["max_epochs"])):
            set_mode(True)
            perm = rng.permutation(fit_rows)
            total, count = 0.0, 0
            for i in range(0, perm.size, bs):
                idx = perm[i : i + bs]
                if idx.size < 2:  # BatchNorm cannot train on one row
                    continue
                mask = present[idx].copy()
                if p_drop > 0:
                    drop = rng.random(mask.shape) < p_drop
                    kept = mask & ~drop
                    # Never drop all of a window's modalities: keep those rows as they were.
                    none_left = ~kept.any(axis=1)
                    kept[none_left] = mask[none_left]
                    mask = kept
                loss = loss_of(idx, mask)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.size
                count += idx.size
            self.loss_history.append(total / max(count, 1))
            current = self.loss_history[-1]
            if val_rows.size:
                set_mode(False)
                with torch.no_grad():
                    current = 0.0
                    for i in range(0, val_rows.size, 256):
                        idx = val_rows[i : i + 256]
                        current += float(loss_of(idx, present[idx])) * idx.size
                    current /= val_rows.size
                self.val_history.append(current)
            if current < best:
                best, wait, self.best_epoch = current, 0, epoch + 1
                best_state = snapshot()
            else:
                wait += 1
                if wait >= s["patience"]:
                    break
        set_mode(False)
        if best_state is not None:
            net.load_state_dict(best_state["net"])
            for k, state in best_state["backbones"].items():
                self.backbones[k].load_state_dict(state)

    def modality_tokens(
        self, X: np.ndarray, side: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Each branch's token before fusion, ``{"eeg"|"audio"|"video": [n x d_model]}``,
        for the modalities this decoder reads (NaN rows where a window lacks the modality)."""
        import torch

        self._check_fitted()
        eeg = self._eeg_array(X)
        audio, video, present = self._side_arrays(side, len(eeg))
        out = []
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            emb = self._frozen_embeddings(audio, video, present)
            for i in range(0, len(eeg), 256):
                idx = np.arange(i, min(i + 256, len(eeg)))
                out.append(self._forward(self.net, idx, eeg, audio, video, present, emb).cpu())
        d = self.settings["d_model"]
        tok = torch.cat(out).numpy() if out else np.zeros((0, len(MODALITIES), d), np.float32)
        res = {}
        for j, m in enumerate(MODALITIES):
            if m in self.modalities:
                t = tok[:, j].astype(np.float32)
                t[~present[:, j]] = np.nan
                res[m] = t
        return res

    def transform(self, X: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Fused representation (the CLS output) ``[n x d_model]`` of the windows ``X``.

        The harness MUST pass ``side`` for the SAME rows as ``X`` (the test rows' audio,
        video and video_present when transforming the test rows): a window's representation
        depends on its audio and video. Without the side inputs a decoder that reads audio or
        video raises :class:`RecallLabError`; ``eeg_only`` needs none. Windows without audio
        (all-NaN row) or video (``video_present`` False) get the learned "missing" token.
        """
        import torch

        self._check_fitted()
        eeg = self._eeg_array(X)
        audio, video, present = self._side_arrays(side, len(eeg))
        out = []
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            for m in self.backbones.values():
                m.eval()
            emb = self._frozen_embeddings(audio, video, present)
            for i in range(0, len(eeg), 256):
                idx = np.arange(i, min(i + 256, len(eeg)))
                tok = self._forward(self.net, idx, eeg, audio, video, present, emb)
                mask = torch.from_numpy(present[idx]).to(self.device)
                out.append(self.net.fuse(tok, mask).cpu())
        if not out:
            return np.zeros((0, self.settings["d_model"]), np.float32)
        return torch.cat(out).numpy().astype(np.float32)

    # read-out ---------------------------------------------------------------------------------
    def fit_readout(self, Z: np.ndarray, y: np.ndarray) -> MultimodalFusion:
        """Keep the classifier head trained with the representation (nothing is refitted)."""
        self._check_fitted()
        return self

    def class_proba_from(self, Z: np.ndarray) -> np.ndarray:
        """Fused rows ``[n x d_model]`` -> probabilities ``[n x len(classes_)]``, columns in
        the order of :attr:`classes_`."""
        import torch

        self._check_fitted()
        Z = np.asarray(Z, np.float32)
        with self._torch_scope(), torch.no_grad():
            self.net.eval()
            logits = self.net.logits(torch.from_numpy(Z).to(self.device))
            p = torch.softmax(logits, dim=1)
        return p.cpu().numpy().astype(np.float32)

    def predict_proba_from(self, Z: np.ndarray) -> np.ndarray:
        """Fused rows ``[n x d_model]`` -> ``[n x len(class_codes)]`` probabilities of the
        run's classes (zero for a class absent in training)."""
        if not set(int(c) for c in self.classes_) <= set(self.class_codes):
            raise RecallLabError(
                f"{self.name}: trained on classes {self.classes_.tolist()}, not the run's class "
                f"codes {list(self.class_codes)}; use class_proba_from"
            )
        return _full_proba(self.classes_, self.class_proba_from(Z), tuple(self.class_codes))

    # sklearn facade with side inputs ---------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        side: dict[str, np.ndarray] | None = None,
        groups: np.ndarray | None = None,
    ) -> MultimodalFusion:
        """Fit on ``X``, ``y`` and the rows' ``side`` inputs."""
        self.fit_representation(X, y, side, groups=groups)
        return self.fit_readout(self.transform(X, side), y)

    def predict_proba(self, X: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Probabilities of :attr:`class_codes` ``[n x classes]`` for ``X`` and the rows'
        ``side`` inputs."""
        return self.predict_proba_from(self.transform(X, side))

    def predict(self, X: np.ndarray, side: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Predicted class codes (of :attr:`classes_`)."""
        Z = self.transform(X, side)
        return np.asarray(self.classes_)[self.class_proba_from(Z).argmax(axis=1)]

    # persistence ------------------------------------------------------------------------------
    def save(self, path: Path | str) -> list[Path]:
        """Write ``<path>.<name>.pt``: fusion weights, fine-tuned backbone layers (none when
        frozen), settings, feature layout, classes and the config digests of the backbones
        (the backbones themselves stay in the models folder)."""
        import torch

        self._check_fitted()
        out = Path(f"{path}.{self.name}.pt")
        torch.save(
            {
                "format": _FORMAT,
                "format_version": _FORMAT_VERSION,
                "torch_version": str(torch.__version__),
                "name": self.name,
                "modalities": list(self.modalities),
                "settings": dict(self.settings),
                "seed": self.seed,
                "feature_names": list(self.layout_names),
                "classes": [c.item() for c in np.asarray(self.classes_)],
                "class_codes": [int(c) for c in self.class_codes],
                "backbone_digests": dict(self.backbone_digests),
                "notes": list(self.notes),
                "loss_history": list(self.loss_history),
                "val_history": list(self.val_history),
                "best_epoch": int(self.best_epoch),
                "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "backbone_state": {k: m.trainable_state() for k, m in self.backbones.items()},
            },
            out,
        )
        return [out]

    @classmethod
    def load(
        cls, file: Path | str, models: str | Path | None = None, device: str | None = None
    ) -> MultimodalFusion:
        """A fitted decoder from a file :meth:`save` wrote.

        Parameters
        ----------
        file
            The ``.pt`` file.
        models
            The models folder holding the backbones (default: the saved setting, then the usual
            resolution); the backbones' ``config.json`` must be the ones trained with.
        device
            ``cpu``, ``cuda`` or ``cuda_if_available`` (default: the saved setting).
        """
        import torch

        try:
            # weights_only: a model file cannot run code when it is read.
            state = torch.load(Path(file), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise RecallLabError(f"{file}: cannot read a fusion model file ({first})") from None
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise RecallLabError(f"{file}: not a multimodal fusion model file")
        if int(state["format_version"]) > _FORMAT_VERSION:
            raise RecallLabError(f"{file}: written by a newer recall-lab; update to read it")
        settings = dict(state["settings"])
        if device is not None:
            settings["device"] = device
        if models is not None:
            settings["models"] = str(models)
        dec = cls(settings, state["modalities"], seed=int(state["seed"]), name=state["name"])
        dec._set_layout(state["feature_names"])
        dec.feature_names = list(state["feature_names"])
        dec.classes_ = np.asarray(state["classes"])
        # Files written before labels.target: the valence codes.
        dec.class_codes = tuple(int(c) for c in state.get("class_codes", CLASS_CODES))
        dec.notes = list(state["notes"])
        dec.loss_history = list(state["loss_history"])
        dec.val_history = list(state["val_history"])
        dec.best_epoch = int(state["best_epoch"])
        dec.device = _resolve_device(settings["device"])
        dec._load_backbones(settings["models"])
        for m, digest in state["backbone_digests"].items():
            if dec.backbone_digests.get(m) != digest:
                raise RecallLabError(
                    f"{file}: the {BACKBONE_KEYS[m]} model in the models folder is not the one "
                    f"this decoder was trained with (config.json differs); point models= at "
                    "that folder"
                )
        for m, params in state["backbone_state"].items():
            if params:
                dec.backbones[m].base.load_state_dict(params, strict=False)
        with dec._torch_scope():
            net = dec._build_net()
            net.load_state_dict(state["state_dict"])
        net.eval()
        dec.net = net
        return dec


def fusion_decoder(name: str, settings: dict[str, Any] | None = None, seed: int = 0) -> Decoder:
    """A new, unfitted fusion decoder by registry name (:data:`FUSION_DECODERS`)."""
    if name not in FUSION_DECODERS:
        raise ConfigError(f"unknown fusion decoder {name!r}; choose from {list(FUSION_DECODERS)}")
    return MultimodalFusion(settings, FUSION_DECODERS[name], seed=seed, name=name)
