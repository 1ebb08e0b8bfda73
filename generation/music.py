"""Music per segment with MusicGen-melody (transformers port), joined on one timeline.

Each segment's music is conditioned on the segment's music prompt and on the chroma of the
memory's guiding melody. Music longer than one window (30 s for the released model) is
generated in overlapping windows: each window is prompted with the codec codes of the last
``overlap`` seconds of the audio so far and continues it. Segments are joined with equal-power
crossfades and the result is normalised to a target RMS loudness with a peak ceiling.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import Cancelled, RecallLabError
from generation.chroma import ChromaSettings, to_mono_rate, window_chroma


class GenerationCancelled(Cancelled):
    """The user cancelled a generation; nothing half-made is recorded."""


@dataclass(frozen=True)
class MusicSettings:
    """How music is generated.

    Attributes
    ----------
    window : float
        Seconds per generation window (the model's maximum is 30 s).
    overlap : float
        Seconds of previous audio each later window continues from.
    crossfade : float
        Seconds of the equal-power crossfade between segments.
    guidance_scale : float
        Classifier-free guidance (3.0 as in the released generation config).
    target_rms_db : float
        Loudness target, dBFS RMS.
    """

    window: float = 30.0
    overlap: float = 10.0
    crossfade: float = 1.0
    guidance_scale: float = 3.0
    target_rms_db: float = -20.0

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.window:
            raise RecallLabError("music windows: overlap must be >= 0 and shorter than the window")
        if self.crossfade < 0:
            raise RecallLabError("--crossfade must be >= 0 seconds")


class MusicGenerator:
    """MusicGen-melody loaded from a local folder.

    Parameters
    ----------
    folder
        Model folder (Hugging Face layout: config.json, weights, tokenizer,
        preprocessor_config.json).
    device
        ``generation.models.Device``.
    """

    def __init__(self, folder: str | Path, device: Any, cancel: threading.Event | None = None):
        import torch
        from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

        self.folder = Path(folder)
        self.device = device
        self.cancel = cancel or threading.Event()
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
        self.model = MusicgenMelodyForConditionalGeneration.from_pretrained(
            self.folder, local_files_only=True, dtype=device.dtype
        ).to(device.name)
        self.model.eval()
        self.chroma = ChromaSettings.from_model_folder(self.folder)
        self.sampling_rate = int(self.model.config.audio_encoder.sampling_rate)
        self.frame_rate = float(self.model.config.audio_encoder.frame_rate)
        self._torch = torch

    # ------------------------------------------------------------------ one window
    def _generate_window(
        self,
        prompt: str,
        melody: np.ndarray | None,
        melody_offset: float,
        seconds: float,
        settings: MusicSettings,
        prefix: np.ndarray | None,
        progress: Any,
    ) -> np.ndarray:
        torch = self._torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        cancel = self.cancel

        class _Watch(StoppingCriteria):
            # Advances the progress bar one codec frame per step and stops on cancel.
            def __call__(self, input_ids, scores, **kwargs):
                if progress is not None:
                    progress.update(1)
                stop = cancel.is_set()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)

        dev = self.device.name
        text = self.tokenizer([prompt], return_tensors="pt", padding=True)
        kwargs: dict[str, Any] = {
            "input_ids": text["input_ids"].to(dev),
            "attention_mask": text["attention_mask"].to(dev),
        }
        n_frames = self.model.config.chroma_length
        if melody is not None:
            chroma = window_chroma(melody, self.chroma, melody_offset, n_frames)
            kwargs["input_features"] = torch.from_numpy(chroma)[None].to(dev, self.device.dtype)
        # The delay pattern offsets codebook k by k steps, so the last (codebooks - 1) steps
        # complete earlier frames rather than adding new ones.
        new_tokens = round(seconds * self.frame_rate) + self.model.decoder.num_codebooks - 1
        prefix_samples = 0
        if prefix is not None and len(prefix):
            with torch.no_grad():
                enc = self.model.audio_encoder.encode(
                    torch.from_numpy(prefix)[None, None].to(dev, self.device.dtype)
                )
            codes = enc.audio_codes  # [chunks=1, batch, codebooks, frames]
            kwargs["decoder_input_ids"] = codes[0].reshape(-1, codes.shape[-1])
            prefix_samples = round(codes.shape[-1] / self.frame_rate * self.sampling_rate)
        if cancel.is_set():
            raise GenerationCancelled("music generation cancelled")
        try:
            with torch.no_grad():
                out = self.model.generate(
                    **kwargs,
                    max_new_tokens=new_tokens,
                    do_sample=True,
                    guidance_scale=settings.guidance_scale,
                    stopping_criteria=StoppingCriteriaList([_Watch()]),
                )
        except RuntimeError:
            # Stopping before the codebook delay is filled leaves no complete frame, which
            # transformers reports as a reshape error; a cancel is what the user asked for.
            if cancel.is_set():
                raise GenerationCancelled("music generation cancelled") from None
            raise
        if cancel.is_set():
            raise GenerationCancelled("music generation cancelled")
        audio = out[0, 0].float().cpu().numpy()
        return audio[prefix_samples:]

    # ------------------------------------------------------------------ one segment
    def generate(
        self,
        prompt: str,
        seconds: float,
        *,
        melody: np.ndarray | None,
        melody_rate: int | None,
        seed: int,
        settings: MusicSettings,
        melody_offset: float = 0.0,
        progress: Any = None,
    ) -> tuple[np.ndarray, list[dict]]:
        """``seconds`` of music (mono float32 at ``self.sampling_rate``) and its window plan.

        Windows after the first each continue from the last ``settings.overlap`` seconds.
        """
        torch = self._torch
        mel = None
        if melody is not None and melody_rate:
            mel = to_mono_rate(melody, melody_rate, self.chroma.sampling_rate)
        torch.manual_seed(seed)
        sr = self.sampling_rate
        need = round(seconds * sr)
        audio = np.zeros(0, dtype=np.float32)
        plan = []
        while len(audio) < need:
            have = len(audio) / sr
            prefix = None
            if have > 0:
                prefix = audio[-round(settings.overlap * sr) :] if settings.overlap > 0 else None
            budget = settings.window - (len(prefix) / sr if prefix is not None else 0.0)
            chunk_s = min(budget, (need - len(audio)) / sr + 1.0 / self.frame_rate)
            new = self._generate_window(
                prompt, mel, melody_offset + have, chunk_s, settings, prefix, progress
            )
            if len(new) == 0:
                raise RecallLabError("MusicGen returned no audio; check the model folder")
            plan.append({"start": have, "seconds": len(new) / sr, "continued": prefix is not None})
            audio = np.concatenate([audio, new.astype(np.float32)])
        return audio[:need], plan


def equal_power_join(
    clips: list[np.ndarray], durations: list[float], rate: int, crossfade: float
) -> np.ndarray:
    """Lay clips on one timeline: clip i starts at the sum of earlier durations.

    Clip i must be at least ``durations[i]`` (+ ``crossfade`` except for the last) long; its
    extra tail fades out (cos) while the next clip fades in (sin), so the power stays constant
    and the total length is exactly ``sum(durations)``.
    """
    starts = np.concatenate([[0], np.cumsum([round(d * rate) for d in durations])])
    total = int(starts[-1])
    out = np.zeros(total, dtype=np.float32)
    xf = round(crossfade * rate)
    if len(durations) > 1:
        xf = min(xf, min(round(d * rate) for d in durations))
    theta = (np.arange(xf) + 0.5) / max(xf, 1) * (np.pi / 2)
    fade_in, fade_out = np.sin(theta), np.cos(theta)
    for i, clip in enumerate(clips):
        a, b = int(starts[i]), int(starts[i + 1])
        n = b - a
        last = i == len(clips) - 1
        body = np.asarray(clip[: n + (0 if last else xf)], dtype=np.float32).copy()
        if len(body) < n + (0 if last else xf):
            body = np.pad(body, (0, n + (0 if last else xf) - len(body)))
        if i > 0 and xf:
            body[:xf] *= fade_in
        if not last and xf:
            body[n:] *= fade_out
        end = min(total, a + len(body))
        out[a:end] += body[: end - a]
    return out


def normalize_loudness(
    audio: np.ndarray, target_db: float = -20.0, peak: float = 0.98
) -> np.ndarray:
    """Scale to ``target_db`` dBFS RMS, then lower the gain if a peak would exceed ``peak``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms < 1e-9:
        return audio.astype(np.float32)
    gain = 10 ** (target_db / 20) / rms
    top = float(np.max(np.abs(audio))) * gain
    if top > peak:
        gain *= peak / top
    return (audio * gain).astype(np.float32)
