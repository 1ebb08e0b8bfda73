"""Chroma of a guiding melody for MusicGen-melody, without torchaudio.

transformers' ``MusicgenMelodyFeatureExtractor`` needs torchaudio (its class is gated on the
torchaudio backend and uses ``torchaudio.transforms.Spectrogram`` and
``torchaudio.functional.resample``); torchaudio has no build for our torch. This module computes
the same features with ``torch.stft`` and scipy: a Hann-windowed power spectrogram (n_fft 16384,
hop 4096, centred, normalised by the window's L2 norm as torchaudio's ``normalized=True`` does),
projected on transformers' ``chroma_filter_bank``, max-normalised per frame and reduced to a
one-hot of the strongest pitch class: the features the model was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ChromaSettings:
    """The feature extractor's settings (from the model folder's preprocessor_config.json)."""

    sampling_rate: int = 32000
    n_fft: int = 16384
    hop_length: int = 4096
    num_chroma: int = 12
    chunk_length: int = 30

    @classmethod
    def from_model_folder(cls, folder: str | Path) -> ChromaSettings:
        import json

        p = Path(folder) / "preprocessor_config.json"
        if not p.is_file():
            return cls()
        d = json.loads(p.read_text())
        return cls(
            **{k: int(d[k]) for k in cls.__dataclass_fields__ if k in d and d[k] is not None}
        )


def to_mono_rate(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float32 at ``target`` Hz (polyphase resampling)."""
    from scipy.signal import resample_poly

    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 2:
        a = a.mean(axis=1)
    if rate != target:
        g = gcd(int(rate), int(target))
        a = resample_poly(a, target // g, rate // g).astype(np.float32)
    return a


def melody_chroma(audio: np.ndarray, settings: ChromaSettings) -> np.ndarray:
    """One-hot chroma ``[frames x num_chroma]`` of mono audio at ``settings.sampling_rate``."""
    import torch
    from transformers.audio_utils import chroma_filter_bank

    wav = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    if wav.shape[-1] < settings.n_fft:
        pad = settings.n_fft - wav.shape[-1]
        wav = torch.nn.functional.pad(wav, (pad // 2, pad // 2 + pad % 2))
    window = torch.hann_window(settings.n_fft)
    spec = torch.stft(
        wav,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.n_fft,
        window=window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    spec = (spec / window.pow(2).sum().sqrt()).abs().pow(2)
    filters = torch.from_numpy(
        chroma_filter_bank(
            sampling_rate=settings.sampling_rate,
            num_frequency_bins=settings.n_fft,
            tuning=0,
            num_chroma=settings.num_chroma,
        )
    ).float()
    raw = filters @ spec  # [chroma x frames]
    norm = torch.nn.functional.normalize(raw, p=float("inf"), dim=0, eps=1e-6)
    idx = norm.argmax(0)
    onehot = torch.zeros(norm.shape[1], settings.num_chroma)
    onehot[torch.arange(norm.shape[1]), idx] = 1.0
    return onehot.numpy()


def window_chroma(
    melody: np.ndarray, settings: ChromaSettings, offset_s: float, frames: int
) -> np.ndarray:
    """Chroma of the melody from ``offset_s`` on, looped to fill ``frames`` frames.

    A hummed melody is usually shorter than the music; looping it keeps the melodic guide
    present through every generation window.
    """
    sr = settings.sampling_rate
    need = frames * settings.hop_length
    start = int(offset_s * sr) % max(1, len(melody))
    reps = int(np.ceil((start + need) / max(1, len(melody)))) + 1
    looped = np.tile(melody, reps)[start : start + need]
    return melody_chroma(looped, settings)[:frames]
