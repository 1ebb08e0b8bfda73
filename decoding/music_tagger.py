"""Music embeddings from an audio tagger, for the music-supervised EEG encoder and retrieval.

Avramidis et al. (2022) supervised their EEG encoder with musicnn embeddings of the music the
participant heard; musicnn needs TensorFlow 1, so recall-lab uses an Audio Spectrogram
Transformer fine-tuned on AudioSet (``MIT/ast-finetuned-audioset-10-10-0.4593``, model key
``audio-tagger``), read from the models folder like every other model (nothing is downloaded).

A clip is cut into segments of ``length`` seconds every ``step`` seconds; segment ``k`` covers
``[k * step, k * step + length)`` s of the clip, so a clip of ``d >= length`` seconds gives
``floor((d - length) / step) + 1`` segments and a shorter clip gives one zero-padded segment.
Each segment's embedding is the tagger's pooled representation: the mean of the CLS and
distillation tokens of the final (layer-normed) hidden state, which is what the AudioSet
classifier head reads.

Embeddings of files can be cached (``embed_file(..., cache=True)``) in
``$XDG_CACHE_HOME/recall-lab/music-embeddings`` (default ``~/.cache/recall-lab/...``), one
``.npy`` per clip, model and segmentation; see :meth:`MusicTagger.cache_file`. Nothing is ever
written next to the audio files.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import RecallLabError

MODEL_KEY = "audio-tagger"

# Kaldi filterbank framing the AST feature extractor uses: 25 ms windows every 10 ms.
_WINDOW_S = 0.025
_HOP_S = 0.010

# Files in a model folder whose bytes define what the model computes (hashed in full), and
# weight files (too big to hash on every load: their name, size and mtime stand in for them).
_CONFIG_FILES = ("config.json", "preprocessor_config.json")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where cached music embeddings live: ``$XDG_CACHE_HOME/recall-lab/music-embeddings``.

    Returns
    -------
    Path
        The folder (not created here); ``~/.cache/recall-lab/music-embeddings`` when
        ``XDG_CACHE_HOME`` is unset or empty.
    """
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "recall-lab" / "music-embeddings"


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        64 hex digits.
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_fingerprint(folder: str | Path) -> str:
    """A cheap identity of the model in ``folder``, for cache keys.

    The SHA-256 of ``config.json`` and ``preprocessor_config.json`` (their bytes) and of each
    weight file's name, size and modification time (not its bytes, which would cost a full read
    of the weights on every load). Replacing or touching the weights, or copying the folder
    elsewhere with new mtimes, therefore gives a new fingerprint and a fresh cache.

    Parameters
    ----------
    folder : str or Path
        A model folder in Hugging Face layout.

    Returns
    -------
    str
        64 hex digits.
    """
    folder = Path(folder)
    h = hashlib.sha256()
    for name in _CONFIG_FILES:
        p = folder / name
        if p.is_file():
            h.update(f"{name}\0".encode())
            h.update(p.read_bytes())
            h.update(b"\0")
    weights = sorted({p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern)})
    for p in weights:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _to_mono(audio: np.ndarray) -> np.ndarray:
    """Mono float64 samples from ``[samples]`` or ``[samples x channels]``."""
    a = np.asarray(audio)
    if a.ndim == 2:
        if a.shape[1] == 0:
            raise RecallLabError("the audio has no channels; give [samples x channels] audio")
        a = a.mean(axis=1, dtype=np.float64)
    elif a.ndim != 1:
        raise RecallLabError(
            f"audio of shape {a.shape}: give [samples] or [samples x channels] samples"
        )
    a = a.astype(np.float64, copy=False)
    if a.size == 0:
        raise RecallLabError("the audio has no samples; give a clip of at least one sample")
    if not np.isfinite(a).all():
        raise RecallLabError("the audio holds NaN or infinite samples; clean the clip first")
    return a


def _resample(mono: np.ndarray, sr: float, target: int) -> np.ndarray:
    """``mono`` at ``target`` Hz (polyphase, with the exact rational factor)."""
    from scipy.signal import resample_poly

    if not np.isfinite(sr) or sr <= 0 or sr != int(sr):
        raise RecallLabError(f"sample rate {sr!r}: give a positive whole number of Hz")
    ratio = Fraction(int(target), int(sr))
    if ratio == 1:
        return mono
    return resample_poly(mono, ratio.numerator, ratio.denominator)


def segment_starts(n_samples: int, rate: int, length: float, step: float) -> list[int]:
    """First sample of each segment (see the module docstring for the segmentation rule).

    Parameters
    ----------
    n_samples : int
        Samples in the clip.
    rate : int
        Its sample rate in Hz.
    length, step : float
        Segment length and spacing in seconds.

    Returns
    -------
    list of int
        ``round(k * step * rate)`` for each segment ``k``; ``[0]`` for a clip shorter than one
        segment.
    """
    seg = round(length * rate)
    if n_samples < seg:
        return [0]
    # The tolerance keeps a clip of exactly d seconds from losing its last segment to rounding.
    count = int(np.floor((n_samples - seg) / (step * rate) + 1e-9)) + 1
    return [round(k * step * rate) for k in range(count)]


class MusicTagger:
    """An AudioSet audio tagger that turns music clips into per-segment embeddings.

    Build it with :meth:`load`.

    Attributes
    ----------
    key : str
        The model key (``"audio-tagger"``).
    path : Path
        The model folder.
    dim : int
        Embedding size (the transformer's hidden size).
    sample_rate : int
        The rate the model listens at (16 kHz for AST); input is resampled to it.
    tiny : bool
        Whether the folder holds tiny random test weights.
    fingerprint : str
        :func:`model_fingerprint` of the folder, taken at load time.
    max_length_s : float
        The longest segment the model's spectrogram window holds, in seconds.
    """

    def __init__(self, path: Path, model: Any, extractor: Any, device: str) -> None:
        from generation.models import is_tiny

        self.key = MODEL_KEY
        self.path = Path(path)
        self.dim = int(model.config.hidden_size)
        self.sample_rate = int(extractor.sampling_rate)
        self.tiny = is_tiny(self.path)
        self.fingerprint = model_fingerprint(self.path)
        self.device = device
        window = round(_WINDOW_S * self.sample_rate)
        hop = round(_HOP_S * self.sample_rate)
        self.max_length_s = ((int(extractor.max_length) - 1) * hop + window) / self.sample_rate
        self._min_samples = window
        self._encoder = model.base_model
        self._extractor = extractor

    @classmethod
    def load(cls, models_root: str | Path | None = None, device: str = "cpu") -> MusicTagger:
        """Load the tagger from the models folder (never downloads).

        Parameters
        ----------
        models_root : str, Path or None
            The models folder; ``None`` resolves it as :func:`generation.models.models_dir` does.
        device : str
            ``"cpu"``, ``"cuda"`` or ``"auto"``; embeddings are computed in float32.

        Returns
        -------
        MusicTagger

        Raises
        ------
        generation.models.ModelMissingError
            The model is not in the models folder (the message gives the download command).
        """
        from transformers import ASTFeatureExtractor, ASTForAudioClassification

        from generation.models import pick_device, require_model

        folder = require_model(MODEL_KEY, models_root)
        dev = pick_device(device).name
        import transformers.utils.logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in a command's output
        try:
            with warnings.catch_warnings():
                # Without torchaudio, transformers builds the Kaldi mel bank in numpy and warns
                # that the lowest of 128 mel filters are empty at a 512-point FFT; Kaldi's own
                # bank (which the model was trained with) has the same empty filters.
                warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
                extractor = ASTFeatureExtractor.from_pretrained(folder, local_files_only=True)
            model = ASTForAudioClassification.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecallLabError(
                f"model {MODEL_KEY} in {folder} could not be loaded ({first}); download it again"
            ) from exc
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        model.to(dev).eval()
        return cls(folder, model, extractor, dev)

    def _check_segmentation(self, length: float, step: float, batch: int) -> None:
        if not np.isfinite(length) or length * self.sample_rate < self._min_samples:
            raise RecallLabError(
                f"segment length {length!r} s: give at least {_WINDOW_S} s (one analysis window)"
            )
        if length > self.max_length_s + 1e-9:
            raise RecallLabError(
                f"segment length {length} s is longer than the {self.key} model's window "
                f"({self.max_length_s:.3f} s); give a shorter length"
            )
        if not np.isfinite(step) or step <= 0:
            raise RecallLabError(f"segment step {step!r} s: give a positive number of seconds")
        if int(batch) < 1:
            raise RecallLabError(f"batch {batch!r}: give a positive number of segments")

    def embed_segments(
        self,
        audio: np.ndarray,
        sr: int,
        *,
        length: float = 3.0,
        step: float = 1.0,
        batch: int = 16,
    ) -> np.ndarray:
        """Embed a clip segment by segment.

        Parameters
        ----------
        audio : numpy.ndarray
            ``[samples]`` or ``[samples x channels]`` (channels are averaged).
        sr : int
            Its sample rate in Hz; the clip is resampled to :attr:`sample_rate`.
        length, step : float
            Segment length and spacing in seconds (segment ``k`` covers
            ``[k * step, k * step + length)``; a clip shorter than ``length`` gives one
            zero-padded segment). ``length`` must fit the model's window
            (:attr:`max_length_s`).
        batch : int
            Segments per forward pass (memory, not results).

        Returns
        -------
        numpy.ndarray
            ``[segments x dim]`` float32.
        """
        import torch

        self._check_segmentation(length, step, batch)
        rate = self.sample_rate
        mono = _resample(_to_mono(audio), sr, rate)
        seg = round(length * rate)
        starts = segment_starts(len(mono), rate, length, step)
        if len(mono) < seg:
            mono = np.pad(mono, (0, seg - len(mono)))
        segments = np.stack([mono[s : s + seg] for s in starts]).astype(np.float32)

        out = np.empty((len(segments), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for i in range(0, len(segments), int(batch)):
                chunk = segments[i : i + int(batch)]
                feats = self._extractor(list(chunk), sampling_rate=rate, return_tensors="pt")
                values = feats["input_values"].to(self.device)
                pooled = self._encoder(input_values=values).pooler_output
                out[i : i + len(chunk)] = pooled.float().cpu().numpy()
        return out

    def cache_file(self, digest: str, length: float, step: float) -> Path:
        """Where the embeddings of the clip with SHA-256 ``digest`` are cached.

        ``<cache_dir()>/<sha256 of the file bytes>-<model fingerprint>-<length>-<step>.npy``,
        with ``length`` and ``step`` written as Python floats (``3.0``, ``1.0``). The file's
        name carries everything the embeddings depend on, so a hit never needs the model.
        """
        return cache_dir() / f"{digest}-{self.fingerprint}-{float(length)!r}-{float(step)!r}.npy"

    def _read_cache(self, path: Path) -> np.ndarray | None:
        try:
            emb = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError) as exc:
            log.info("ignoring unreadable cached embeddings %s (%s)", path, exc)
            return None
        if (
            not isinstance(emb, np.ndarray)
            or emb.ndim != 2
            or emb.shape[0] < 1
            or emb.shape[1] != self.dim
            or emb.dtype != np.float32
            or not np.isfinite(emb).all()
        ):
            log.info("ignoring malformed cached embeddings %s", path)
            return None
        return emb

    def _write_cache(self, path: Path, emb: np.ndarray) -> None:
        # Write a temporary file and rename it over the target, so a reader never sees half a
        # file; a cache that cannot be written only costs a recomputation next time.
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=path.parent, prefix=".tmp-", suffix=".npy", delete=False
            ) as f:
                tmp = Path(f.name)
                np.save(f, emb, allow_pickle=False)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("could not cache music embeddings in %s (%s)", path.parent, exc)
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def embed_file(
        self,
        path: str | Path,
        *,
        cache: bool = False,
        length: float = 3.0,
        step: float = 1.0,
        batch: int = 16,
    ) -> np.ndarray:
        """Embed an audio file (any format soundfile reads) segment by segment.

        Parameters
        ----------
        path : str or Path
            The audio file.
        cache : bool
            Read the embeddings from, or store them in, the cache (:meth:`cache_file`);
            an unreadable or malformed cache file is ignored and rewritten.
        length, step, batch
            As in :meth:`embed_segments`.

        Returns
        -------
        numpy.ndarray
            ``[segments x dim]`` float32.

        Raises
        ------
        RecallLabError
            The file is missing or is not audio soundfile can read.
        """
        import soundfile as sf

        path = Path(path)
        self._check_segmentation(length, step, batch)
        if not path.is_file():
            raise RecallLabError(f"{path}: no such audio file")
        target = None
        if cache:
            try:
                digest = file_sha256(path)
            except OSError as exc:
                raise RecallLabError(f"{path}: cannot read the file ({exc.strerror})") from exc
            target = self.cache_file(digest, length, step)
            hit = self._read_cache(target)
            if hit is not None:
                return hit
        try:
            audio, sr = sf.read(path, always_2d=True, dtype="float32")
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RecallLabError(
                f"{path}: not audio that can be read ({first}); give a WAV, FLAC or OGG file"
            ) from exc
        if audio.shape[0] == 0:
            raise RecallLabError(f"{path}: the file holds no audio samples")
        emb = self.embed_segments(audio, sr, length=length, step=step, batch=batch)
        if target is not None:
            self._write_cache(target, emb)
        return emb
