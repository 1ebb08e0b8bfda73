"""Keyframes with Stable Diffusion 1.5, and video frames that move between them.

From the participant's sketch: ControlNet scribble when that model is present (the sketch's lines
guide the layout), otherwise img2img (the sketch is the starting image). Without a sketch:
text-to-image. All keyframes of one memory share a seed, so the scene stays recognisable while
the affect changes. Video frames crossfade between consecutive keyframes around each segment
boundary.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from generation.music import GenerationCancelled


@dataclass(frozen=True)
class ImageSettings:
    """How keyframes are made.

    Attributes
    ----------
    steps : int
        Denoising steps (25 as in the benchmark configuration).
    guidance_scale : float
        Classifier-free guidance.
    strength : float
        img2img: how far from the sketch the image may move (0..1).
    controlnet_scale : float
        ControlNet: how strictly the sketch's lines are followed.
    negative_prompt : str
        What no keyframe should show.
    """

    steps: int = 25
    guidance_scale: float = 7.5
    strength: float = 0.75
    controlnet_scale: float = 1.0
    negative_prompt: str = "text, watermark, low quality, deformed"


def sketch_image(png: bytes, size: int, *, scribble: bool):
    """The sketch as an RGB PIL image of ``size`` x ``size``.

    ControlNet scribble expects white lines on black; a sketch canvas is dark lines on white,
    so for ControlNet the image is inverted.
    """
    from PIL import Image, ImageOps

    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = ImageOps.pad(img, (size, size), color=(255, 255, 255))
    return ImageOps.invert(img) if scribble else img


class KeyframePainter:
    """Loads the right Stable Diffusion pipeline for a memory and paints keyframes.

    Parameters
    ----------
    sd_folder
        Stable Diffusion 1.5 folder (diffusers layout).
    controlnet_folder
        ControlNet scribble folder, or ``None``.
    has_sketch
        Whether the memory has a sketch (decides img2img/ControlNet versus text-to-image).
    device
        ``generation.models.Device``.
    """

    def __init__(
        self,
        sd_folder: Path,
        controlnet_folder: Path | None,
        has_sketch: bool,
        device: Any,
        cancel: threading.Event | None = None,
    ):
        from diffusers import (
            ControlNetModel,
            StableDiffusionControlNetPipeline,
            StableDiffusionImg2ImgPipeline,
            StableDiffusionPipeline,
        )

        self.device = device
        self.cancel = cancel or threading.Event()
        common = {"local_files_only": True, "dtype": device.dtype}
        # The released SD 1.5 folder ships a safety checker; keyframes of a participant's own
        # memory are reviewed by the experimenter, so it is not loaded.
        safety = {"safety_checker": None, "requires_safety_checker": False}
        if has_sketch and controlnet_folder is not None:
            self.mode = "controlnet-scribble"
            cn = ControlNetModel.from_pretrained(controlnet_folder, **common)
            self.pipe = StableDiffusionControlNetPipeline.from_pretrained(
                sd_folder, controlnet=cn, **common, **safety
            )
        elif has_sketch:
            self.mode = "img2img"
            self.pipe = StableDiffusionImg2ImgPipeline.from_pretrained(
                sd_folder, **common, **safety
            )
        else:
            self.mode = "text2img"
            self.pipe = StableDiffusionPipeline.from_pretrained(sd_folder, **common, **safety)
        self.pipe = self.pipe.to(device.name)
        self.size = int(self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor)
        self.tokenizer = self.pipe.tokenizer

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` takes in the pipeline's CLIP tokenizer (without BOS/EOS)."""
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def paint(
        self,
        prompt: str,
        *,
        seed: int,
        sketch_png: bytes | None,
        settings: ImageSettings,
        show_progress: bool = True,
        counter: Callable[[Any], None] | None = None,
    ):
        """One keyframe (PIL image) for ``prompt``; the same seed gives the same noise.

        ``counter(pipe)`` is called after every denoising step (see :func:`step_counter`)."""
        import torch

        self.pipe.set_progress_bar_config(disable=not show_progress, leave=False)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        cancel = self.cancel

        def on_step(pipe, step, timestep, callback_kwargs):  # diffusers' interrupt hook
            if cancel.is_set():
                pipe._interrupt = True
            elif counter is not None:
                counter(pipe)
            return callback_kwargs

        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": settings.negative_prompt,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance_scale,
            "generator": gen,
            "callback_on_step_end": on_step,
        }
        if self.mode == "controlnet-scribble":
            kwargs["image"] = sketch_image(sketch_png, self.size, scribble=True)
            kwargs["controlnet_conditioning_scale"] = settings.controlnet_scale
            kwargs.update(height=self.size, width=self.size)
        elif self.mode == "img2img":
            kwargs["image"] = sketch_image(sketch_png, self.size, scribble=False)
            kwargs["strength"] = settings.strength
            # img2img denoises int(steps x strength) steps: never none (--steps 1 at strength
            # 0.75 made zero, and an empty batch crashed the VAE).
            kwargs["num_inference_steps"] = max(
                settings.steps, math.ceil(1.0 / max(settings.strength, 1e-3))
            )
        else:
            kwargs.update(height=self.size, width=self.size)
        if cancel.is_set():
            raise GenerationCancelled("image generation cancelled")
        with torch.no_grad():
            image = self.pipe(**kwargs).images[0]
        if cancel.is_set():
            raise GenerationCancelled("image generation cancelled")
        return image


def step_counter(step: Any, n_runs: int) -> Callable[[Any], None]:
    """Count the denoising steps of ``n_runs`` pipeline calls on a progress ``step``.

    A pipeline knows its own number of steps only once it runs (img2img runs ``strength`` x
    the steps asked for), so the total is set from ``pipe.num_timesteps`` at the first call.
    """
    sized = False

    def count(pipe: Any) -> None:
        nonlocal sized
        if not sized:
            per_run = int(getattr(pipe, "num_timesteps", 0) or 0)
            if per_run > 0:
                step.resize(n_runs * per_run)
            sized = True
        step.update(1)

    return count


def frame_times(total: float, fps: float) -> np.ndarray:
    """Centre time of every video frame; ``round(total * fps)`` frames."""
    n = round(total * fps)
    return (np.arange(n) + 0.5) / fps


def render_frames(
    keyframes: list[Any],
    starts: list[float],
    total: float,
    fps: float,
    transition: float,
):
    """Yield video frames (uint8 HxWx3) that show each segment's picture over its segment.

    ``keyframes`` holds, per segment, a still keyframe (HxWx3 array) or an animated
    :class:`generation.animation.SegmentVisual`; a clip is sampled at each frame's time measured
    from its segment's start, so its motion follows the video's clock whatever the clip's own
    frame rate. Around each boundary the frames crossfade over ``transition`` seconds (centred
    on the boundary, limited to half of the shorter neighbouring segment), with smoothstep
    easing; during the crossfade both clips keep moving. Exactly ``round(total * fps)`` frames.
    """
    from generation.animation import SegmentVisual

    visuals = [k if isinstance(k, SegmentVisual) else SegmentVisual.still(k) for k in keyframes]
    bounds = [*starts[1:]]
    ends = [*starts[1:], total]
    durations = [e - s for s, e in zip(starts, ends)]

    def picture(i: int, t: float) -> np.ndarray:
        return visuals[i].frame_at(t - starts[i], durations[i])

    for t in frame_times(total, fps):
        i = int(np.searchsorted(starts, t, side="right") - 1)
        frame = None
        for j, b in enumerate(bounds):
            half = min(transition / 2, durations[j] / 2, durations[j + 1] / 2)
            if half > 0 and abs(t - b) < half:
                x = (t - (b - half)) / (2 * half)
                w = x * x * (3 - 2 * x)
                frame = (1 - w) * picture(j, t) + w * picture(j + 1, t)
                break
        if frame is None:
            frame = picture(i, t)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)
