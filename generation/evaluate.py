"""How well the outputs match their prompts and the intended affect.

- CLIP text-image similarity of each keyframe with its image prompt;
- CLAP text-audio similarity of each segment's music with its music prompt;
- zero-shot valence of each output: P(positive) - P(negative) between a positive and a negative
  caption (CLIP for images, CLAP for music), and its Pearson correlation with the intended
  valence over segments (with the number of segments, since a handful says little).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

IMAGE_CAPTIONS = ("a happy, joyful, positive picture", "a sad, gloomy, negative picture")
MUSIC_CAPTIONS = ("happy, uplifting, positive music", "sad, gloomy, negative music")


def _cos(a: Any, b: Any) -> np.ndarray:
    import torch

    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return (a @ b.T).cpu().numpy()


def _valence(sim_pos_neg: np.ndarray, logit_scale: float) -> np.ndarray:
    z = sim_pos_neg * logit_scale
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return p[:, 0] - p[:, 1]


def clip_scores(folder: Path, images: list, prompts: list[str], device: Any) -> dict:
    """CLIP similarity of each image with its prompt, and zero-shot valence per image."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    proc = CLIPProcessor.from_pretrained(folder, local_files_only=True)
    model = CLIPModel.from_pretrained(folder, local_files_only=True).to(device.name).eval()
    with torch.no_grad():
        px = proc(images=images, return_tensors="pt")["pixel_values"].to(device.name)
        img = model.get_image_features(pixel_values=px)
        texts = proc.tokenizer(
            [*prompts, *IMAGE_CAPTIONS], padding=True, truncation=True, return_tensors="pt"
        ).to(device.name)
        txt = model.get_text_features(**texts)
    return _prompt_similarity_and_valence(img, txt, len(prompts), model.logit_scale)


def clap_scores(folder: Path, clips: list[np.ndarray], rate: int, prompts: list[str], device: Any):
    """CLAP similarity of each clip with its prompt, and zero-shot valence per clip."""
    import torch
    from transformers import ClapModel, ClapProcessor

    from generation.chroma import to_mono_rate

    proc = ClapProcessor.from_pretrained(folder, local_files_only=True)
    model = ClapModel.from_pretrained(folder, local_files_only=True).to(device.name).eval()
    sr = int(proc.feature_extractor.sampling_rate)
    audio = [to_mono_rate(c, rate, sr) for c in clips]
    with torch.no_grad():
        # An unfused CLAP (laion/clap-htsat-unfused) takes one mel "channel"; the fusion mode
        # stacks four, so choose the truncation that matches the audio tower.
        fused = bool(getattr(model.config.audio_config, "enable_fusion", False))
        feats = proc.feature_extractor(
            audio,
            sampling_rate=sr,
            truncation="fusion" if fused else "rand_trunc",
            return_tensors="pt",
        )
        aud = model.get_audio_features(input_features=feats["input_features"].to(device.name))
        texts = proc.tokenizer(
            [*prompts, *MUSIC_CAPTIONS], padding=True, truncation=True, return_tensors="pt"
        ).to(device.name)
        txt = model.get_text_features(**texts)
    return _prompt_similarity_and_valence(aud, txt, len(prompts), model.logit_scale_a)


def _prompt_similarity_and_valence(outputs: Any, texts: Any, n: int, logit_scale: Any) -> dict:
    """Outputs [n] against texts [n prompts + valence captions]: each output's similarity with
    its own prompt, and its zero-shot valence from the captions."""
    outputs = getattr(outputs, "pooler_output", outputs)
    texts = getattr(texts, "pooler_output", texts)
    sims = _cos(outputs, texts)
    return {
        "similarity": [float(sims[i, i]) for i in range(n)],
        "valence": _valence(sims[:, n:], float(logit_scale.exp().item())).tolist(),
    }


def affect_correlation(intended: list[float], measured: list[float]) -> dict:
    """Pearson r between intended and measured valence over segments (NaN if undefined)."""
    x, y = np.asarray(intended, float), np.asarray(measured, float)
    n = len(x)
    if n < 3 or np.std(x) == 0 or np.std(y) == 0:
        return {"r": None, "n": n, "note": "undefined: fewer than 3 segments or no variation"}
    return {"r": float(np.corrcoef(x, y)[0, 1]), "n": n}
