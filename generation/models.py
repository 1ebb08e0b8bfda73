"""Which models the generation pipeline uses, where they live, and how to load them.

Models are read only from local folders in the standard Hugging Face layout, found under one
models folder. Nothing is downloaded at run time (``local_files_only=True`` everywhere).

The models folder is, in order of precedence: ``--models DIR``, the ``RECALL_LAB_MODELS``
environment variable, the ``models_dir`` key of the config file
(``$XDG_CONFIG_HOME/recall-lab/config.json``, default ``~/.config/recall-lab/config.json``),
and ``~/.cache/recall-lab/models``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_schema.errors import ConfigError, RecallLabError

ENV_VAR = "RECALL_LAB_MODELS"


class ModelMissingError(RecallLabError):
    """A model the pipeline needs is not in the models folder."""


@dataclass(frozen=True)
class ModelSpec:
    """One model the pipeline can use.

    Attributes
    ----------
    key : str
        Short name used in manifests and messages.
    folder : str
        Sub-folder of the models folder holding the model in Hugging Face layout.
    repo_id : str
        The Hugging Face repository to download on a connected machine.
    role : str
        What the pipeline uses it for.
    required : bool
        Whether ``recall-lab generate`` needs it (optional models add features).
    marker : str
        A file (relative to ``folder``) whose presence says the folder is complete.
    download_args : str
        Extra ``hf download`` arguments (e.g. ``--include`` to skip single-file checkpoints the
        diffusers layout does not need).
    note : str
        What to do before downloading (e.g. accept a gated model's licence).
    """

    key: str
    folder: str
    repo_id: str
    role: str
    required: bool
    marker: str
    download_args: str = ""
    note: str = ""

    def download_command(self, models_dir: Path | str = "$RECALL_LAB_MODELS") -> str:
        """The command to run on a connected machine to fetch this model."""
        extra = f" {self.download_args}" if self.download_args else ""
        return f"hf download {self.repo_id}{extra} --local-dir {models_dir}/{self.folder}"


MODEL_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "stable-diffusion",
        "stable-diffusion-v1-5",
        "stable-diffusion-v1-5/stable-diffusion-v1-5",
        "keyframes: img2img from the sketch, text-to-image without one",
        True,
        "model_index.json",
    ),
    ModelSpec(
        "controlnet-scribble",
        "controlnet-scribble",
        "lllyasviel/sd-controlnet-scribble",
        "keyframes that follow the sketch's lines (used instead of img2img when present)",
        False,
        "config.json",
    ),
    ModelSpec(
        "musicgen-melody",
        "musicgen-melody",
        "facebook/musicgen-melody",
        "music conditioned on the prompt and the guiding melody's chroma",
        True,
        "config.json",
    ),
    ModelSpec(
        "clip",
        "clip",
        "openai/clip-vit-base-patch32",
        "evaluation: text-image similarity and zero-shot valence of keyframes",
        False,
        "config.json",
    ),
    ModelSpec(
        "clap",
        "clap",
        "laion/clap-htsat-unfused",
        "evaluation: text-audio similarity and zero-shot valence of music",
        False,
        "config.json",
    ),
    ModelSpec(
        "svd",
        "svd",
        "stabilityai/stable-video-diffusion-img2vid-xt",
        "animation: Stable Video Diffusion image-to-video from each keyframe (used when present)",
        False,
        "model_index.json",
        # The repo also holds the original single-file checkpoints (svd_xt*.safetensors, ~10 GB)
        # that the diffusers layout does not use.
        download_args='--exclude "svd_xt*.safetensors"',
        note="gated: accept the licence on its Hugging Face page and `hf auth login` first",
    ),
    ModelSpec(
        "animatediff",
        "animatediff-motion-adapter",
        "guoyww/animatediff-motion-adapter-v1-5-2",
        "animation: AnimateDiff motion module on SD 1.5, video-to-video from each keyframe",
        False,
        "config.json",
    ),
    ModelSpec(
        "audio-tagger",
        "ast-audioset",
        "MIT/ast-finetuned-audioset-10-10-0.4593",
        "music embeddings for the music-supervised EEG encoder and EEG-to-music retrieval "
        "(decode, retrieve)",
        False,
        "config.json",
    ),
    ModelSpec(
        "face-vit",
        "vit-face-expression",
        "trpakov/vit-face-expression",
        "video branch of the multimodal fusion decoder (face frames)",
        False,
        "config.json",
    ),
)

# Animation models in the order ``--animation auto`` tries them.
ANIMATION_KEYS: tuple[str, ...] = ("svd", "animatediff")

SPECS_BY_KEY: dict[str, ModelSpec] = {s.key: s for s in MODEL_SPECS}


def config_file() -> Path:
    """Where the user config file lives."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "recall-lab" / "config.json"


def models_dir(explicit: str | Path | None = None) -> Path:
    """Resolve the models folder (see the module docstring for the order)."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    cfg = config_file()
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{cfg}: not valid JSON ({exc}); fix or delete it") from exc
        if isinstance(data, dict) and data.get("models_dir"):
            return Path(str(data["models_dir"])).expanduser()
    return Path.home() / ".cache" / "recall-lab" / "models"


def model_path(key: str, root: str | Path | None = None) -> Path | None:
    """The folder of model ``key`` if it is present and complete, else ``None``."""
    spec = SPECS_BY_KEY[key]
    p = models_dir(root) / spec.folder
    return p if (p / spec.marker).is_file() else None


def require_model(key: str, root: str | Path | None = None) -> Path:
    """The folder of model ``key``; raises :class:`ModelMissingError` naming it if absent."""
    p = model_path(key, root)
    if p is None:
        spec = SPECS_BY_KEY[key]
        d = models_dir(root)
        note = f" ({spec.note})" if spec.note else ""
        raise ModelMissingError(
            f"model {spec.key} ({spec.repo_id}) not found in {d / spec.folder}; on a connected "
            f"machine run `{spec.download_command(d)}`{note}, or `recall-lab models make-tiny "
            "DIR` for smoke tests"
        )
    return p


def model_inventory(root: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per model: key, repo, role, required, found path (or None), download command."""
    d = models_dir(root)
    return [
        {
            "key": s.key,
            "repo_id": s.repo_id,
            "role": s.role,
            "required": s.required,
            "path": str(p) if (p := model_path(s.key, d)) else None,
            "download": s.download_command(d),
            "note": s.note,
            "tiny": is_tiny(p) if p else False,
        }
        for s in MODEL_SPECS
    ]


def is_tiny(path: Path) -> bool:
    """Whether a model folder holds tiny random test weights (written by make-tiny)."""
    return (path / "RECALL_LAB_TINY").exists()


@dataclass(frozen=True)
class Device:
    """Where and in which precision torch runs."""

    name: str  # "cuda" or "cpu"
    dtype_name: str  # "float16" or "float32"

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.dtype_name)


def pick_device(prefer: str = "auto") -> Device:
    """CUDA with half precision when present, CPU with float32 otherwise."""
    import torch

    if prefer not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {prefer!r}: use auto, cpu or cuda")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")
    if prefer != "cpu" and torch.cuda.is_available():
        return Device("cuda", "float16")
    return Device("cpu", "float32")
