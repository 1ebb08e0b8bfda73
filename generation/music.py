"""Music per segment with MusicGen-melody (transformers port), joined on one timeline.

Each segment's music is conditioned on the segment's music prompt and on the chroma of the
memory's guiding melody. Music longer than one window (30 s for the released model) is
generated in overlapping windows: each window is prompted with the codec codes of the last
``overlap`` seconds of the audio so far and continues it.

Segments are joined in one of two ways (``MusicSettings.join``):

``continue`` (default)
    One chain per segment order: segment k > 0 is generated as a continuation of the audio so
    far (the codec codes of its last ``overlap`` seconds are the audio prompt, with segment k's
    own text prompt and melody chroma), so the music carries on across each boundary.
``crossfade``
    Each segment is generated on its own with a ``crossfade`` tail and the segments are laid
    end to end with equal-power crossfades (any order can be joined from the same clips).

The result is normalised to a target RMS loudness with a peak ceiling.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import Cancelled, RecallLabError
from generation.chroma import ChromaSettings, to_mono_rate, window_chroma

#: How segments' music is joined: a continuation chain, or separate clips crossfaded.
JOINS = ("continue", "crossfade")
#: Seconds before a continuation's first new sample over which the audio so far hands over to
#: the codec's own decoding of its prompt, which the new audio continues sample by sample
#: (the decoding of re-encoded audio is close to, not equal to, the audio itself).
SEAM_SECONDS = 0.05


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
        Seconds of the equal-power crossfade between segments (``join="crossfade"``).
    join : str
        ``"continue"``: each segment continues the audio of the one before it (one chain per
        segment order); ``"crossfade"``: separate clips joined by equal-power crossfades.
    guidance_scale : float
        Classifier-free guidance (3.0 as in the released generation config).
    target_rms_db : float
        Loudness target, dBFS RMS.
    """

    window: float = 30.0
    overlap: float = 10.0
    crossfade: float = 1.0
    join: str = "continue"
    guidance_scale: float = 3.0
    target_rms_db: float = -20.0

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.window:
            raise RecallLabError("music windows: overlap must be >= 0 and shorter than the window")
        if self.crossfade < 0:
            raise RecallLabError("--crossfade must be >= 0 seconds")
        if self.join not in JOINS:
            raise RecallLabError(f"--music-join {self.join!r}: give one of {', '.join(JOINS)}")
        if self.join == "continue" and self.overlap <= 0:
            raise RecallLabError("--music-join continue needs --overlap > 0 (the audio prompt)")

    def tail(self) -> float:
        """Seconds each segment's clip runs past its segment (the crossfade tail, if any)."""
        return self.crossfade if self.join == "crossfade" else 0.0


@dataclass(frozen=True)
class MusicPart:
    """What one segment's music is generated from.

    Attributes
    ----------
    prompt : str
        The segment's music prompt.
    seconds : float
        How long the segment lasts.
    melody, melody_rate
        Guiding melody waveform and its rate (None: text-only conditioning).
    melody_offset : float
        Seconds into the melody where the segment's chroma starts.
    seed : int
        Sampling seed of the segment.
    """

    prompt: str
    seconds: float
    melody: np.ndarray | None
    melody_rate: int | None
    melody_offset: float
    seed: int


@dataclass
class MusicChain:
    """Segments generated one after another, each continuing the audio before it.

    Attributes
    ----------
    track : numpy.ndarray
        The whole chain (mono float32), exactly the sum of the parts' lengths.
    clips : list of numpy.ndarray
        Each part's stretch of ``track``, in chain order.
    plans : list of list of dict
        Each part's generation windows (``continued``: prompted with the audio before it).
    """

    track: np.ndarray
    clips: list[np.ndarray]
    plans: list[list[dict]]


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
    ) -> tuple[np.ndarray, int]:
        """The decoded window (the prompt's codec rendering, then the new audio) and the
        number of its samples that render ``prefix``."""
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
        return out[0, 0].float().cpu().numpy(), prefix_samples

    # ------------------------------------------------------------------ continuing audio
    def _extend(
        self,
        track: np.ndarray,
        prompt: str,
        seconds: float,
        melody: np.ndarray | None,
        melody_offset: float,
        settings: MusicSettings,
        progress: Any,
    ) -> tuple[np.ndarray, list[dict]]:
        """``track`` followed by ``seconds`` of new music and the windows that made it.

        Every window after the start of ``track`` is prompted with the codec codes of the last
        ``settings.overlap`` seconds before it. The new audio follows the codec's decoding of
        that prompt without a break, so the last ``SEAM_SECONDS`` of the audio before it are
        crossfaded (linearly: both render the same music) into that decoding.
        """
        sr = self.sampling_rate
        hop = round(sr / self.frame_rate)
        need = len(track) + round(seconds * sr)
        start = len(track)
        plan = []
        while len(track) < need:
            have = (len(track) - start) / sr
            prefix = None
            if len(track) and settings.overlap > 0:
                # Whole codec frames, so the prompt's decoding ends exactly where it did.
                n = min(len(track), round(settings.overlap * sr)) // hop * hop
                prefix = track[len(track) - n :] if n else None
            budget = settings.window - (len(prefix) / sr if prefix is not None else 0.0)
            chunk_s = min(budget, (need - len(track)) / sr + 1.0 / self.frame_rate)
            decoded, n_prefix = self._generate_window(
                prompt, melody, melody_offset + have, chunk_s, settings, prefix, progress
            )
            new = decoded[n_prefix:].astype(np.float32)
            if len(new) == 0:
                raise RecallLabError("MusicGen returned no audio; check the model folder")
            if n_prefix:
                seam = min(round(SEAM_SECONDS * sr), n_prefix, len(track))
                ramp = (np.arange(seam, dtype=np.float32) + 0.5) / max(seam, 1)
                rendered = decoded[n_prefix - seam : n_prefix].astype(np.float32)
                track = track.copy()
                track[len(track) - seam :] = (
                    track[len(track) - seam :] * (1 - ramp) + rendered * ramp
                )
            plan.append({"start": have, "seconds": len(new) / sr, "continued": bool(n_prefix)})
            track = np.concatenate([track, new])
        return track[:need], plan

    def _melody(self, melody: np.ndarray | None, melody_rate: int | None) -> np.ndarray | None:
        if melody is None or not melody_rate:
            return None
        return to_mono_rate(melody, melody_rate, self.chroma.sampling_rate)

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
        self._torch.manual_seed(seed)
        empty = np.zeros(0, dtype=np.float32)
        mel = self._melody(melody, melody_rate)
        return self._extend(empty, prompt, seconds, mel, melody_offset, settings, progress)

    def generate_part(
        self,
        part: MusicPart,
        settings: MusicSettings,
        *,
        extra: float = 0.0,
        progress: Any = None,
    ) -> tuple[np.ndarray, list[dict]]:
        """``part``'s music on its own (continuing nothing), ``extra`` seconds longer (e.g. a
        crossfade tail), and its window plan: :meth:`generate` with the part's settings."""
        return self.generate(
            part.prompt,
            part.seconds + extra,
            melody=part.melody,
            melody_rate=part.melody_rate,
            seed=part.seed,
            settings=settings,
            melody_offset=part.melody_offset,
            progress=progress,
        )

    # ------------------------------------------------------------------ segments in a chain
    def generate_chain(
        self, parts: list[MusicPart], settings: MusicSettings, progress: Any = None
    ) -> MusicChain:
        """The parts' music in the given order, each continuing the audio of those before it.

        Part k > 0 is prompted with the codec codes of the last ``settings.overlap`` seconds of
        the chain so far, its own text prompt and the chroma of its own melody span, sampled
        with its own seed; so a different order (the control) is a different chain. Part k's
        stretch of the track is ``round(seconds * rate)`` samples at the cumulative offsets
        :func:`equal_power_join` uses, so both joins give the same length.
        """
        sr = self.sampling_rate
        track = np.zeros(0, dtype=np.float32)
        plans = []
        bounds = [0]
        for part in parts:
            self._torch.manual_seed(part.seed)
            mel = self._melody(part.melody, part.melody_rate)
            start = len(track)
            track, plan = self._extend(
                track, part.prompt, part.seconds, mel, part.melody_offset, settings, progress
            )
            track = track[: start + round(part.seconds * sr)]
            plans.append(plan)
            bounds.append(len(track))
        clips = [track[a:b] for a, b in itertools.pairwise(bounds)]
        return MusicChain(track, clips, plans)


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


def boundary_transitions(
    audio: np.ndarray,
    rate: int,
    boundaries: list[float],
    frame: float = 0.032,
    guard: float = 0.25,
) -> dict[str, Any]:
    """How abruptly ``audio`` changes at each boundary, against how it changes elsewhere.

    Spectral flux across a time t is the distance between the magnitude spectra (Hann window)
    of the ``frame`` seconds before t and the ``frame`` seconds after it, relative to their
    mean norm (so loudness does not matter); the jump is ``|x[t] - x[t - 1]|``. The reference
    is the same measure at every ``frame`` step inside the segments, ``guard`` seconds or more
    away from any boundary (and from the ends).

    Returns
    -------
    dict
        ``flux`` and ``jump`` (one value per boundary), ``flux_median_within`` and
        ``jump_median_within``, and per boundary their ratios to those medians
        (``flux_ratio``, ``jump_ratio``).
    """
    x = np.asarray(audio, dtype=np.float64)
    n = max(2, round(frame * rate))
    win = np.hanning(n)

    def flux_at(t: int) -> float:
        a = np.abs(np.fft.rfft(x[t - n : t] * win))
        b = np.abs(np.fft.rfft(x[t : t + n] * win))
        scale = (np.linalg.norm(a) + np.linalg.norm(b)) / 2
        return float(np.linalg.norm(a - b) / scale) if scale > 0 else 0.0

    cuts = [round(b * rate) for b in boundaries]
    away = max(n, round(guard * rate))
    within = [t for t in range(away, len(x) - away, n) if all(abs(t - c) >= away for c in cuts)]
    if not within:
        raise ValueError("segments too short to measure flux inside them; lower guard")
    flux_in = float(np.median([flux_at(t) for t in within]))
    diffs = np.abs(np.diff(x))
    mask = np.ones(len(diffs), bool)
    for c in [0, *cuts, len(x)]:
        mask[max(0, c - away) : c + away] = False
    jump_in = float(np.median(diffs[mask])) if mask.any() else float(np.median(diffs))
    flux = [flux_at(c) for c in cuts]
    jump = [float(abs(x[c] - x[c - 1])) for c in cuts]
    return {
        "flux": flux,
        "jump": jump,
        "flux_median_within": flux_in,
        "jump_median_within": jump_in,
        "flux_ratio": [f / flux_in if flux_in > 0 else float("inf") for f in flux],
        "jump_ratio": [j / jump_in if jump_in > 0 else float("inf") for j in jump],
    }
