"""Keyframes with Stable Diffusion 1.5, and video frames that move between them.

From the participant's sketch: ControlNet scribble when that model is present (the sketch's lines
guide the layout), otherwise img2img (the sketch is the starting image). Without a sketch:
text-to-image. All keyframes of one memory share a seed, so the scene stays recognisable while
the affect changes.

Around each segment boundary the video moves from one segment's picture to the next
(``--transition-mode``): ``cut`` (a hard cut), ``crossfade`` (the two pictures blended), or
``morph`` (default): a few in-between keyframes are painted by running the same diffusion for
interpolated inputs (slerp of the two segments' initial noise latents and img2img starting
latents, linear interpolation of their prompt embeddings), so the picture itself changes rather
than fading; the video crossfades only between adjacent in-betweens, which are close.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import ConfigError
from generation.music import GenerationCancelled

TRANSITION_MODES = ("cut", "crossfade", "morph")


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
    morph_steps : int
        ``--transition-mode morph``: in-between keyframes painted per segment boundary (each
        costs one keyframe; 4 keeps a 6-segment memory under 4x the keyframe stage).
    morph_strength : float
        Morphing between animated clips: img2img strength of the in-between in the middle of
        the window (it falls off as ``sin(pi u)`` towards the two clip frames it joins).
    """

    steps: int = 25
    guidance_scale: float = 7.5
    strength: float = 0.75
    controlnet_scale: float = 1.0
    negative_prompt: str = "text, watermark, low quality, deformed"
    morph_steps: int = 4
    morph_strength: float = 0.5


def check_transition(mode: str, morph_steps: int) -> None:
    """Raise :class:`ConfigError` naming the option when a transition setting is invalid."""
    if mode not in TRANSITION_MODES:
        raise ConfigError(f"--transition-mode {mode!r}: use {', '.join(TRANSITION_MODES)}")
    if morph_steps < 1:
        raise ConfigError("--morph-steps must be at least 1")


def slerp(a: Any, b: Any, u: float) -> Any:
    """Spherical interpolation between two tensors (``u`` = 0 gives ``a``, 1 gives ``b``).

    Gaussian noise latents keep their norm along the arc (a straight line between two noise
    samples passes through low-norm latents, which the denoiser turns into washed-out
    pictures). Nearly parallel tensors (the same seed) fall back to linear interpolation.
    """
    import torch

    a32, b32 = a.float(), b.float()
    na, nb = a32.flatten().norm(), b32.flatten().norm()
    if na == 0 or nb == 0:
        return torch.lerp(a32, b32, float(u)).to(a.dtype)
    cos = torch.dot(a32.flatten() / na, b32.flatten() / nb).clamp(-1.0, 1.0)
    theta = float(torch.arccos(cos))
    if theta < 1e-4:
        out = torch.lerp(a32, b32, float(u))
    else:
        s = math.sin(theta)
        out = (math.sin((1 - u) * theta) / s) * a32 + (math.sin(u * theta) / s) * b32
    return out.to(a.dtype)


@dataclass
class KeyframeInputs:
    """What one picture is painted from: the inputs that a morph interpolates.

    Attributes
    ----------
    prompt_embeds, negative_embeds
        Text-encoder outputs of the prompt and the negative prompt (``None`` without guidance).
    noise
        Initial noise latents (text-to-image and ControlNet), ``None`` for img2img.
    start
        img2img starting latents (the VAE-encoded sketch or clip frame), else ``None``.
    generator_state
        The seeded generator's state after these inputs were drawn, so a picture painted from
        them draws the same further noise as the keyframe did.
    from_frame
        Made from an animation frame (img2img at a strength falling off towards the ends).
    """

    prompt_embeds: Any
    negative_embeds: Any
    noise: Any
    start: Any
    generator_state: Any
    from_frame: bool = False


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
        self._frame_pipe: Any = None

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

        gen = torch.Generator(device="cpu").manual_seed(seed)
        kwargs: dict[str, Any] = {
            "prompt": prompt,
            "negative_prompt": settings.negative_prompt,
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance_scale,
            "generator": gen,
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
        return self._run(self.pipe, kwargs, show_progress, counter)

    def _run(
        self,
        pipe: Any,
        kwargs: dict[str, Any],
        show_progress: bool,
        counter: Callable[[Any], None] | None,
    ):
        """One pipeline call with the cancel and progress hooks; the PIL image."""
        import torch

        cancel = self.cancel

        def on_step(pipe, step, timestep, callback_kwargs):  # diffusers' interrupt hook
            if cancel.is_set():
                pipe._interrupt = True
            elif counter is not None:
                counter(pipe)
            return callback_kwargs

        pipe.set_progress_bar_config(disable=not show_progress, leave=False)
        if cancel.is_set():
            raise GenerationCancelled("image generation cancelled")
        with torch.no_grad():
            image = pipe(**kwargs, callback_on_step_end=on_step).images[0]
        if cancel.is_set():
            raise GenerationCancelled("image generation cancelled")
        return image

    def _img2img(self) -> Any:
        """An img2img pipeline on the loaded modules (for morphs between animation frames)."""
        if self.mode == "img2img":
            return self.pipe
        if self._frame_pipe is None:
            from diffusers import StableDiffusionImg2ImgPipeline

            parts = {k: v for k, v in self.pipe.components.items() if k != "controlnet"}
            parts.update(safety_checker=None, requires_safety_checker=False)
            self._frame_pipe = StableDiffusionImg2ImgPipeline(**parts)
        return self._frame_pipe

    def inputs(
        self,
        prompt: str,
        *,
        seed: int,
        sketch_png: bytes | None,
        settings: ImageSettings,
        frame: Any = None,
    ) -> KeyframeInputs:
        """The inputs :meth:`paint` makes its keyframe from (same seed, same draws), or, with
        ``frame`` (a PIL animation frame), the inputs of an img2img repaint of that frame."""
        import torch
        from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import (
            retrieve_latents,
        )
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self._img2img() if frame is not None else self.pipe
        device = torch.device(self.device.name)
        guidance = settings.guidance_scale > 1
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            pos, neg = pipe.encode_prompt(
                prompt, device, 1, guidance, settings.negative_prompt if guidance else None
            )
            noise = start = None
            if frame is not None or self.mode == "img2img":
                image = frame
                if image is None:
                    image = sketch_image(sketch_png, self.size, scribble=False)
                x = pipe.image_processor.preprocess(image).to(device, pipe.vae.dtype)
                start = retrieve_latents(pipe.vae.encode(x), generator=gen)
                start = start * pipe.vae.config.scaling_factor
            else:
                latent = self.size // pipe.vae_scale_factor
                shape = (1, pipe.unet.config.in_channels, latent, latent)
                noise = randn_tensor(shape, generator=gen, device=device, dtype=pos.dtype)
        return KeyframeInputs(pos, neg, noise, start, gen.get_state(), frame is not None)

    def inbetween(
        self,
        a: KeyframeInputs,
        b: KeyframeInputs,
        u: float,
        *,
        sketch_png: bytes | None,
        settings: ImageSettings,
        counter: Callable[[Any], None] | None = None,
    ):
        """The picture a fraction ``u`` of the way from ``a``'s inputs to ``b``'s (PIL).

        The diffusion runs on slerped noise / starting latents and linearly interpolated prompt
        embeddings; ``u`` = 0 repaints ``a``'s keyframe. img2img draws its noise inside the
        pipeline from ``a``'s generator state (one seed per memory: the same for ``b``).
        """
        import torch

        gen = torch.Generator(device="cpu")
        gen.set_state(a.generator_state)
        kwargs: dict[str, Any] = {
            "prompt_embeds": torch.lerp(a.prompt_embeds, b.prompt_embeds, float(u)),
            "num_inference_steps": settings.steps,
            "guidance_scale": settings.guidance_scale,
            "generator": gen,
        }
        if a.negative_embeds is not None:
            kwargs["negative_prompt_embeds"] = torch.lerp(
                a.negative_embeds, b.negative_embeds, float(u)
            )
        pipe = self._img2img() if a.from_frame else self.pipe
        if a.start is not None:
            strength = settings.strength
            if a.from_frame:  # close to the two clip frames at the ends, freest in the middle
                strength = settings.morph_strength * math.sin(math.pi * u)
            strength = min(max(strength, 1.0 / settings.steps, 1e-3), 1.0)
            kwargs["image"] = slerp(a.start, b.start, u)
            kwargs["strength"] = strength
            kwargs["num_inference_steps"] = max(settings.steps, math.ceil(1.0 / strength))
        else:
            kwargs["latents"] = slerp(a.noise, b.noise, u)
            kwargs.update(height=self.size, width=self.size)
            if self.mode == "controlnet-scribble":
                kwargs["image"] = sketch_image(sketch_png, self.size, scribble=True)
                kwargs["controlnet_conditioning_scale"] = settings.controlnet_scale
        return self._run(pipe, kwargs, False, counter)


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
    mode: str = "crossfade",
    inbetweens: list[list[np.ndarray]] | None = None,
):
    """Yield video frames (uint8 HxWx3) that show each segment's picture over its segment.

    ``keyframes`` holds, per segment, a still keyframe (HxWx3 array) or an animated
    :class:`generation.animation.SegmentVisual`; a clip is sampled at each frame's time measured
    from its segment's start, so its motion follows the video's clock whatever the clip's own
    frame rate. Each boundary has a window of ``transition`` seconds (centred on the boundary,
    limited to half of the shorter neighbouring segment) where, by ``mode``:

    - ``cut``: no window; the picture changes from one frame to the next.
    - ``crossfade``: the two pictures blend with smoothstep easing; both clips keep moving.
    - ``morph``: the window steps at a constant pace through the pictures ``inbetweens[j]``
      (HxWx3 float arrays, ordered from segment ``j``'s side to ``j + 1``'s), blending only
      adjacent ones (the live picture of each segment at the window's edges); a boundary
      without in-betweens crossfades.

    Exactly ``round(total * fps)`` frames, whatever the mode.
    """
    from generation.animation import SegmentVisual

    visuals = [k if isinstance(k, SegmentVisual) else SegmentVisual.still(k) for k in keyframes]
    bounds = [*starts[1:]]
    ends = [*starts[1:], total]
    durations = [e - s for s, e in zip(starts, ends)]

    def picture(i: int, t: float) -> np.ndarray:
        return visuals[i].frame_at(t - starts[i], durations[i])

    def window(j: int, t: float) -> np.ndarray:
        half = min(transition / 2, durations[j] / 2, durations[j + 1] / 2)
        x = (t - (bounds[j] - half)) / (2 * half)
        between = (inbetweens or [])[j] if mode == "morph" and j < len(inbetweens or []) else []
        if not between:
            w = x * x * (3 - 2 * x)
            return (1 - w) * picture(j, t) + w * picture(j + 1, t)
        pos = x * (len(between) + 1)
        k = min(int(pos), len(between))
        f = pos - k
        near = picture(j, t) if k == 0 else between[k - 1]
        far = picture(j + 1, t) if k == len(between) else between[k]
        return (1 - f) * near + f * far

    for t in frame_times(total, fps):
        i = int(np.searchsorted(starts, t, side="right") - 1)
        frame = None
        if mode != "cut":
            for j, b in enumerate(bounds):
                half = min(transition / 2, durations[j] / 2, durations[j + 1] / 2)
                if half > 0 and abs(t - b) < half:
                    frame = window(j, t)
                    break
        if frame is None:
            frame = picture(i, t)
        yield np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def boundary_pairs(orders: list[list[int]]) -> list[tuple[int, int]]:
    """The (outgoing, incoming) segment pairs at the boundaries of every order, each once."""
    pairs: list[tuple[int, int]] = []
    for order in orders:
        for pair in pairwise(order):
            if pair not in pairs:
                pairs.append(pair)
    return pairs


def paint_transitions(
    painter: KeyframePainter,
    orders: list[list[int]],
    prompts: list[str],
    visuals: list[Any],
    durations: list[float],
    *,
    seed: int,
    sketch_png: bytes | None,
    settings: ImageSettings,
    step: Any = None,
) -> dict[tuple[int, int], list[np.ndarray]]:
    """In-between pictures for every boundary of every segment order (``--transition-mode
    morph``), as ``{(a, b): [HxWx3 float32, ...]}`` ordered from ``a`` to ``b``.

    Still keyframes: the in-betweens are painted from the interpolated inputs of the two
    keyframes (:meth:`KeyframePainter.inbetween` at ``u = k / (morph_steps + 1)``); a pair seen
    the other way round (the control) reuses them reversed, since the interpolation is
    symmetric. Animated segments (:class:`generation.animation.SegmentVisual` with more than one
    frame): the ends are the last frame ``a``'s clip shows at the boundary and the first frame
    of ``b``'s clip, each VAE-encoded and repainted with img2img; every ordered pair is painted.
    ``step`` (a progress step) counts denoising steps; the cancel event stops within one.
    """
    from PIL import Image

    animated = any(len(v.frames) > 1 for v in visuals)
    m = settings.morph_steps
    fractions = [k / (m + 1) for k in range(1, m + 1)]
    pairs = boundary_pairs(orders)
    todo = [p for n, p in enumerate(pairs) if animated or (p[1], p[0]) not in pairs[:n]]
    count = None
    if step is not None:
        step.resize(len(todo) * m * (settings.steps + 1))  # at most; corrected at the end
        count = step.update

    def counter(pipe: Any) -> None:
        if count is not None:
            count(1)

    cache: dict[tuple[int, str], KeyframeInputs] = {}

    def inputs(i: int, side: str) -> KeyframeInputs:
        key = (i, side if animated else "keyframe")
        if key not in cache:
            frame = None
            if animated:
                t = durations[i] if side == "end" else 0.0
                pixels = visuals[i].frame_at(t, durations[i])
                frame = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))
            cache[key] = painter.inputs(
                prompts[i], seed=seed, sketch_png=sketch_png, settings=settings, frame=frame
            )
        return cache[key]

    out: dict[tuple[int, int], list[np.ndarray]] = {}
    for a, b in todo:
        ia, ib = inputs(a, "end"), inputs(b, "start")
        out[(a, b)] = [
            np.asarray(
                painter.inbetween(
                    ia, ib, u, sketch_png=sketch_png, settings=settings, counter=counter
                ).convert("RGB"),
                dtype=np.float32,
            )
            for u in fractions
        ]
    for a, b in pairs:
        if (a, b) not in out:
            out[(a, b)] = out[(b, a)][::-1]
    if step is not None:
        if not todo:  # one segment: no boundary, nothing to paint; the step still completes
            step.resize(1)
            step.update(1)
        step.resize(step.done)
    return {p: out[p] for p in pairs}
