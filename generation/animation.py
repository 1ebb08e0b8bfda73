"""Animated segments: a short clip from each keyframe, fitted to the segment's time span.

Two optional models animate keyframes when their folders are present (``--animation auto``
prefers Stable Video Diffusion, then AnimateDiff):

- ``svd``: Stable Video Diffusion image-to-video (diffusers ``StableVideoDiffusionPipeline``);
  the keyframe is the conditioning frame, so the clip starts from the picture the participant's
  sketch and prompt produced. SVD has no text input: the affect reaches it through the keyframe.
- ``animatediff``: the AnimateDiff motion adapter inserted into the Stable Diffusion 1.5 UNet
  (diffusers ``MotionAdapter`` + ``AnimateDiffVideoToVideoPipeline``); the keyframe held still
  is the input video and the segment's image prompt guides the motion, so both the picture and
  the affect words shape the clip.

A clip is a few seconds long at its own frame rate; a segment can be longer or shorter.
:class:`SegmentVisual` maps any time on the video's timeline to a frame of its clip, so the
renderer can sample it at the output frame rate for exactly the segment's span (and a little
beyond it for the crossfades): ``pingpong`` plays the clip at its own speed forwards and
backwards (no jump where a loop would restart), ``stretch`` slows or speeds it to span the
segment once. The number of video frames never depends on the clip, so picture and music stay
on one timeline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from data_schema.errors import ConfigError
from generation.music import GenerationCancelled

ANIMATION_CHOICES = ("auto", "svd", "animatediff", "none")
FIT_MODES = ("pingpong", "stretch")

# The released models' native clip lengths and frame rates (SVD-XT: 25 frames, conditioned on
# fps 7 in diffusers' default; AnimateDiff v1-5-2: 16-frame context at 8 fps).
DEFAULT_FRAMES = {"svd": None, "animatediff": 16}  # None: the UNet config's num_frames
DEFAULT_FPS = {"svd": 7.0, "animatediff": 8.0}


@dataclass(frozen=True)
class AnimationSettings:
    """How keyframes are animated.

    Attributes
    ----------
    choice : str
        ``auto`` (the first animation model found, else stills), ``svd``, ``animatediff`` or
        ``none`` (still keyframes).
    frames : int or None
        Frames per clip; ``None`` for the model's native length.
    fps : float or None
        The clip's own frame rate; ``None`` for the model's native rate.
    steps : int or None
        Denoising steps; ``None`` uses the keyframes' ``--steps``.
    fit : str
        ``pingpong`` or ``stretch`` (see the module docstring).
    motion_bucket_id : int
        SVD: amount of motion (127 as released; higher moves more).
    noise_aug_strength : float
        SVD: noise added to the conditioning frame (0.02 as released).
    min_guidance_scale, max_guidance_scale : float
        SVD: guidance ramps linearly over the frames between these.
    decode_chunk_size : int
        SVD: frames the VAE decodes at once (memory against speed).
    strength : float
        AnimateDiff: how far the clip may move away from the still keyframe (0..1).
    """

    choice: str = "auto"
    frames: int | None = None
    fps: float | None = None
    steps: int | None = None
    fit: str = "pingpong"
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    min_guidance_scale: float = 1.0
    max_guidance_scale: float = 3.0
    decode_chunk_size: int = 8
    strength: float = 0.6

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the option that is out of range."""
        if self.choice not in ANIMATION_CHOICES:
            raise ConfigError(f"--animation {self.choice!r}: use {', '.join(ANIMATION_CHOICES)}")
        if self.fit not in FIT_MODES:
            raise ConfigError(f"--animation-fit {self.fit!r}: use {' or '.join(FIT_MODES)}")
        if self.frames is not None and self.frames < 2:
            raise ConfigError("--animation-frames must be at least 2")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError("--animation-fps must be positive")
        if self.steps is not None and self.steps < 1:
            raise ConfigError("--animation-steps must be at least 1")
        if not 0 < self.strength <= 1:
            raise ConfigError("animation strength must be in (0, 1]")


def choose_animation(choice: str, root: str | Path | None) -> tuple[str, Path] | None:
    """The animation model to use, as ``(key, folder)``, or ``None`` for still keyframes.

    ``auto`` takes the first of :data:`generation.models.ANIMATION_KEYS` that is present; a
    model asked for by name must be present (:class:`ModelMissingError` names it and how to get
    it otherwise).
    """
    from generation.models import ANIMATION_KEYS, model_path, require_model

    if choice not in ANIMATION_CHOICES:
        raise ConfigError(f"--animation {choice!r}: use {', '.join(ANIMATION_CHOICES)}")
    if choice == "none":
        return None
    if choice == "auto":
        for key in ANIMATION_KEYS:
            p = model_path(key, root)
            if p is not None:
                return key, p
        return None
    return choice, require_model(choice, root)


@dataclass
class SegmentVisual:
    """The picture of one segment: a still keyframe or an animated clip.

    Attributes
    ----------
    frames : numpy.ndarray
        ``(n, H, W, 3)`` float32 in 0..255; ``n == 1`` for a still keyframe.
    fps : float
        The clip's own frame rate (ignored for a still).
    fit : str
        ``pingpong`` or ``stretch``.
    """

    frames: np.ndarray
    fps: float = 1.0
    fit: str = "pingpong"

    @classmethod
    def still(cls, image: np.ndarray) -> SegmentVisual:
        """A keyframe held for the whole segment."""
        return cls(np.asarray(image, dtype=np.float32)[None])

    def position(self, local_t: float, duration: float) -> float:
        """Fractional clip frame shown ``local_t`` s after the segment starts.

        Times before the start or after the end (the crossfades) continue the same motion
        (pingpong) or hold the first/last frame (stretch).
        """
        n = len(self.frames)
        if n == 1:
            return 0.0
        if self.fit == "stretch":
            return float(np.clip(local_t / max(duration, 1e-9) * (n - 1), 0, n - 1))
        period = 2 * (n - 1)  # forwards then backwards, in frames
        x = abs(local_t * self.fps) % period
        return x if x <= n - 1 else period - x

    def frame_at(self, local_t: float, duration: float) -> np.ndarray:
        """The frame (float32 HxWx3) at ``local_t``, blending neighbouring clip frames."""
        x = self.position(local_t, duration)
        i = int(np.floor(x))
        w = x - i
        if w < 1e-6 or i + 1 >= len(self.frames):
            return self.frames[min(i, len(self.frames) - 1)]
        return (1 - w) * self.frames[i] + w * self.frames[i + 1]


class SegmentAnimator:
    """Loads one animation model and turns keyframes into clips.

    Parameters
    ----------
    key
        ``svd`` or ``animatediff``.
    folder
        The model folder (for AnimateDiff: the motion adapter; the SD 1.5 folder is ``sd_folder``).
    sd_folder
        Stable Diffusion 1.5 folder (AnimateDiff runs on its UNet, VAE and text encoder).
    device
        ``generation.models.Device``.
    settings
        :class:`AnimationSettings`.
    default_steps
        Denoising steps when ``settings.steps`` is ``None``.
    cancel
        Set to stop at the next denoising step.
    """

    def __init__(
        self,
        key: str,
        folder: Path,
        sd_folder: Path,
        device: Any,
        settings: AnimationSettings,
        default_steps: int,
        cancel: threading.Event | None = None,
    ):
        self.key = key
        self.settings = settings
        self.device = device
        self.cancel = cancel or threading.Event()
        self.steps = settings.steps or default_steps
        self._counter: Callable[[Any], None] | None = None
        common = {"local_files_only": True, "dtype": device.dtype}
        if key == "svd":
            from diffusers import StableVideoDiffusionPipeline

            self.pipe = StableVideoDiffusionPipeline.from_pretrained(
                folder, **common, **_variant(folder / "unet")
            )
            self.frames = settings.frames or int(self.pipe.unet.config.num_frames)
        elif key == "animatediff":
            from diffusers import AnimateDiffVideoToVideoPipeline, MotionAdapter

            adapter = MotionAdapter.from_pretrained(folder, **common, **_variant(folder))
            # The SD 1.5 folder ships a safety checker the motion pipeline has no slot for.
            self.pipe = AnimateDiffVideoToVideoPipeline.from_pretrained(
                sd_folder, motion_adapter=adapter, **common
            )
            self.frames = settings.frames or DEFAULT_FRAMES["animatediff"]
            limit = int(adapter.config.motion_max_seq_length)
            if self.frames > limit:
                raise ConfigError(
                    f"--animation-frames {self.frames}: the AnimateDiff motion adapter takes at "
                    f"most {limit} frames"
                )
        else:
            raise ConfigError(f"unknown animation model {key!r}; use svd or animatediff")
        self.pipe = self.pipe.to(device.name)
        self.fps = float(settings.fps or DEFAULT_FPS[key])

    def _on_step(self, pipe, step, timestep, callback_kwargs):  # diffusers' step hook
        if self.cancel.is_set():
            # SVD has no interrupt flag; raising here stops either pipeline within one step.
            raise GenerationCancelled("animation cancelled")
        if self._counter is not None:
            self._counter(pipe)
        return callback_kwargs

    def animate(
        self,
        keyframe: Any,
        prompt: str,
        *,
        seed: int,
        guidance_scale: float,
        negative_prompt: str,
        show_progress: bool = True,
        counter: Callable[[Any], None] | None = None,
    ) -> np.ndarray:
        """A clip ``(frames, H, W, 3)`` float32 0..255 that starts from ``keyframe`` (PIL);
        ``counter(pipe)`` after every denoising step."""
        import torch

        self._counter = counter
        if self.cancel.is_set():
            raise GenerationCancelled("animation cancelled")
        self.pipe.set_progress_bar_config(disable=not show_progress, leave=False)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        w, h = keyframe.size
        s = self.settings
        if self.key == "svd":
            kwargs = {
                "image": keyframe,
                "height": h,
                "width": w,
                "num_frames": self.frames,
                "num_inference_steps": self.steps,
                "fps": round(self.fps),
                "motion_bucket_id": s.motion_bucket_id,
                "noise_aug_strength": s.noise_aug_strength,
                "min_guidance_scale": s.min_guidance_scale,
                "max_guidance_scale": s.max_guidance_scale,
                "decode_chunk_size": min(s.decode_chunk_size, self.frames),
            }
        else:
            kwargs = {
                "video": [keyframe] * self.frames,
                "prompt": prompt,
                "negative_prompt": negative_prompt,
                "height": h,
                "width": w,
                "num_inference_steps": self.steps,
                "guidance_scale": guidance_scale,
                "strength": s.strength,
                "decode_chunk_size": s.decode_chunk_size,
            }
        with torch.no_grad():
            out = self.pipe(
                **kwargs, generator=gen, output_type="np", callback_on_step_end=self._on_step
            )
        frames = np.asarray(out.frames[0], dtype=np.float32)  # (n, H, W, 3) in 0..1
        return np.clip(frames * 255.0, 0, 255)

    def info(self) -> dict[str, Any]:
        """What the manifest records about the animation."""
        return {
            "frames": self.frames,
            "fps": self.fps,
            "steps": self.steps,
            "fit": self.settings.fit,
            "pipeline": type(self.pipe).__name__,
        }


def _variant(folder: Path) -> dict[str, str]:
    """``{"variant": "fp16"}`` when a folder holds only half-precision weight files.

    Released video models often ship ``*.fp16.safetensors`` next to (or instead of) full
    precision; diffusers needs to be told to pick the variant when no plain file exists.
    """
    files = [p.name for p in folder.glob("*.safetensors")] + [p.name for p in folder.glob("*.bin")]
    plain = [f for f in files if ".fp16." not in f]
    return {"variant": "fp16"} if files and not plain else {}
