"""Seconds per generation stage with full-size architectures and random weights.

Same configurations as the released models: Stable Diffusion 1.5 (UNet, VAE, CLIP ViT-L/14 text
encoder) at 512x512 with 25 steps and classifier-free guidance; MusicGen-melody 1.5B (48-layer
1536-wide decoder, T5-base text encoder, 32 kHz EnCodec) with guidance; ffmpeg composition of a
2-minute 512x512 video. Weights are random (speed does not depend on them).

Long stages are measured over a few steps and extrapolated; every figure says whether it was
measured or extrapolated. Usage::

    python benchmarks/bench_generate.py [--device cpu|cuda] [--unet-steps 2] [--tokens 8 24]

Writes benchmarks/results/generation.json and generation.md (figures for each device are kept,
so a GPU run adds to a CPU run).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
RECONSTRUCTION_S = 120.0  # the goal: a 2-minute memory
SEGMENTS = 6  # a typical 2-minute recall: about 20 s per affect segment


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: str, repeat: int = 1) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat


def bench_stable_diffusion(device: str, dtype, unet_steps: int) -> dict:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    out: dict = {}
    t0 = time.perf_counter()
    # SD 1.5 UNet: the diffusers defaults are SD's (320/640/1280/1280, 2 layers per block,
    # 8 attention heads) except the text width, 768 for CLIP ViT-L/14.
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768).to(device, dtype).eval()
    vae = (
        AutoencoderKL(
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            up_block_types=["UpDecoderBlock2D"] * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        .to(device, dtype)
        .eval()
    )
    text = (
        CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
            )
        )
        .to(device, dtype)
        .eval()
    )
    out["build_s"] = time.perf_counter() - t0
    out["unet_params_M"] = sum(p.numel() for p in unet.parameters()) / 1e6
    ids = torch.randint(0, 49408, (2, 77), device=device)
    lat = torch.randn(2, 4, 64, 64, device=device, dtype=dtype)  # batch 2: guidance
    with torch.no_grad():
        out["text_encoder_s"] = _timed(lambda: text(ids), device)
        emb = text(ids).last_hidden_state
        unet(lat, 999, encoder_hidden_states=emb)  # warm-up
        per_step = _timed(
            lambda: unet(lat, 999, encoder_hidden_states=emb), device, repeat=unet_steps
        )
        out["unet_step_s"] = per_step
        out["unet_steps_measured"] = unet_steps
        img = torch.randn(1, 3, 512, 512, device=device, dtype=dtype)
        vae.decode(lat[:1, :, :16, :16])  # warm-up at a small size
        out["vae_encode_s"] = _timed(lambda: vae.encode(img), device)
        out["vae_decode_s"] = _timed(lambda: vae.decode(lat[:1]), device)
    out["keyframe_25_steps_s"] = (
        out["text_encoder_s"] + 25 * per_step + out["vae_decode_s"] + out["vae_encode_s"]
    )
    out["keyframe_extrapolated"] = True
    return out


def bench_musicgen(device: str, dtype, tokens: list[int]) -> dict:
    import torch
    from transformers import (
        EncodecConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    out: dict = {}
    t0 = time.perf_counter()
    # facebook/musicgen-melody: the 1.5B ("medium") LM with a T5-base text encoder and the
    # 32 kHz EnCodec (4 codebooks of 2048, 50 frames/s).
    cfg = MusicgenMelodyConfig(
        text_encoder=T5Config(
            vocab_size=32128, d_model=768, d_ff=3072, d_kv=64, num_layers=12, num_heads=12
        ).to_dict(),
        audio_encoder=EncodecConfig(
            sampling_rate=32000,
            audio_channels=1,
            hidden_size=128,
            num_filters=64,
            num_residual_layers=1,
            upsampling_ratios=[8, 5, 4, 4],
            codebook_size=2048,
            target_bandwidths=[2.2],
            num_lstm_layers=2,
            normalize=False,
            use_causal_conv=False,
            norm_type="weight_norm",
        ).to_dict(),
        decoder=MusicgenMelodyDecoderConfig(
            vocab_size=2048,
            hidden_size=1536,
            num_hidden_layers=48,
            num_attention_heads=24,
            ffn_dim=6144,
            num_codebooks=4,
        ).to_dict(),
    )
    model = MusicgenMelodyForConditionalGeneration(cfg).to(device, dtype).eval()
    out["build_s"] = time.perf_counter() - t0
    out["params_M"] = sum(p.numel() for p in model.parameters()) / 1e6
    ids = torch.randint(0, 32128, (1, 24), device=device)
    chroma = torch.zeros(1, 235, 12, device=device, dtype=dtype)
    chroma[..., 0] = 1
    gen_kwargs = {
        "input_ids": ids,
        "input_features": chroma,
        "do_sample": True,
        "guidance_scale": 3.0,
        "pad_token_id": 2048,
        "decoder_start_token_id": 2048,
    }
    # Warm-up: the first call pays one-off costs (kernel selection, allocator growth) that
    # would otherwise be counted as per-window overhead.
    model.generate(**gen_kwargs, max_new_tokens=4)
    times = []
    for n in tokens:
        t = _timed(
            lambda n=n: model.generate(**gen_kwargs, max_new_tokens=n),
            device,
        )
        times.append(t)
    per_token = (times[-1] - times[0]) / (tokens[-1] - tokens[0])
    out["tokens_measured"] = tokens
    out["generate_s_measured"] = times
    out["per_token_s"] = per_token
    out["fixed_overhead_s"] = max(0.0, times[0] - per_token * tokens[0])
    codes = torch.randint(0, 2048, (1, 1, 4, 1500), device=device)
    with torch.no_grad():
        out["encodec_decode_30s_s"] = _timed(
            lambda: model.audio_encoder.decode(codes, [None]), device
        )
    out["music_30s_s"] = out["fixed_overhead_s"] + 1503 * per_token + out["encodec_decode_30s_s"]
    out["music_30s_extrapolated"] = True
    return out


def bench_compose(seconds: float, fps: float = 24.0) -> dict:
    from generation.images import render_frames
    from generation.video import write_mp4, write_wav

    rng = np.random.default_rng(0)
    keys = [rng.integers(0, 255, (512, 512, 3), dtype=np.uint8) for _ in range(SEGMENTS)]
    starts = list(np.linspace(0, seconds, SEGMENTS, endpoint=False))
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "a.wav"
        write_wav(wav, 0.1 * rng.standard_normal(int(seconds * 32000)), 32000)
        t0 = time.perf_counter()
        write_mp4(
            Path(d) / "v.mp4", render_frames(keys, starts, seconds, fps, 1.0), (512, 512), fps, wav
        )
        return {"compose_s": time.perf_counter() - t0, "video_s": seconds, "measured": True}


def bench_svd(device: str, dtype, frames: tuple[int, int] = (1, 3)) -> dict:
    """Stable Video Diffusion (img2vid-xt) UNet step cost per frame, 512x512, CFG.

    ``UNetSpatioTemporalConditionModel()``'s defaults are the released SVD UNet configuration
    (320/640/1280/1280 blocks, 25 frames, 1024-d image embedding). One denoising step is timed
    for two clip lengths; the difference gives the per-frame cost (spatial layers scale with
    frames, temporal attention over 25 frames is small beside them), which is extrapolated to a
    25-frame, 25-step clip.
    """
    import torch
    from diffusers import UNetSpatioTemporalConditionModel

    t0 = time.perf_counter()
    torch.manual_seed(0)
    unet = UNetSpatioTemporalConditionModel().to(device, dtype).eval()
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    step_s = []
    for n in frames:
        # CFG: batch 2 (unconditional + image); 8 latent channels (noise + image latents).
        x = torch.randn(2, n, 8, 64, 64, device=device, dtype=dtype)
        emb = torch.randn(2, 1, 1024, device=device, dtype=dtype)
        ids = torch.tensor([[6.0, 127.0, 0.02]] * 2, device=device, dtype=dtype)
        t = torch.tensor([1.0], device=device, dtype=dtype)
        with torch.no_grad():
            step_s.append(_timed(lambda x=x, e=emb, i=ids, t=t: unet(x, t, e, i), device))
        print(f"  SVD UNet step, {n} frame(s): {step_s[-1]:.1f} s")
    per_frame = (step_s[1] - step_s[0]) / (frames[1] - frames[0])
    fixed = max(step_s[0] - per_frame * frames[0], 0.0)
    clip_s = 25 * (fixed + 25 * per_frame)
    return {
        "build_s": build_s,
        "unet_params_M": params,
        "frames_measured": list(frames),
        "unet_step_s_measured": step_s,
        "per_frame_step_s": per_frame,
        "clip_25_frames_25_steps_s": clip_s,
        "clip_extrapolated": True,
    }


def estimate_reconstruction(sd: dict, mg: dict, comp: dict) -> dict:
    """Seconds for a 2-minute memory: 6 keyframes + 126 s of music in 30 s windows + MP4."""
    music_s = RECONSTRUCTION_S + SEGMENTS * 1.0  # crossfade tails
    # 30 s windows with 10 s overlap: the first yields 30 s, each later one 20 s new audio.
    per_seg = music_s / SEGMENTS
    windows = int(np.ceil(max(0.0, per_seg - 30) / 20)) + 1
    # New tokens only (+3 per window for the codebook delay); the overlap prefix is a single
    # parallel forward pass, counted in the per-window overhead.
    tokens = SEGMENTS * (per_seg * 50 + windows * 3)
    music = (
        SEGMENTS * windows * mg["fixed_overhead_s"]
        + tokens * mg["per_token_s"]
        + music_s / 30 * mg["encodec_decode_30s_s"]
    )
    images = SEGMENTS * sd["keyframe_25_steps_s"]
    total = images + music + comp["compose_s"]
    return {
        "segments": SEGMENTS,
        "images_s": images,
        "music_s": music,
        "compose_s": comp["compose_s"],
        "total_s": total,
        "realtime_factor": total / RECONSTRUCTION_S,
        "extrapolated": True,
    }


def main() -> None:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--unet-steps", type=int, default=2)
    ap.add_argument("--tokens", type=int, nargs=2, default=[8, 24])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--only-svd", action="store_true", help="only the Stable Video Diffusion UNet figures"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = torch.float16 if args.device == "cuda" else torch.float32
    host = {
        "device": args.device,
        "dtype": str(dtype).replace("torch.", ""),
        "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "note": "CPU shared with other jobs while measured" if args.device == "cpu" else "",
    }
    print(f"device {args.device} ({host['dtype']}), torch threads {host['torch_threads']}")
    path = RESULTS / "generation.json"
    if args.only_svd:
        svd = bench_svd(args.device, dtype)
        print(
            f"SVD UNet per frame per step (CFG, 512x512): {svd['per_frame_step_s']:.1f} s; "
            f"25-frame 25-step clip (extrapolated): {svd['clip_25_frames_25_steps_s']:.0f} s"
        )
        data = json.loads(path.read_text()) if path.exists() else {}
        entry = data.setdefault(args.device, {"host": host})
        entry["stable_video_diffusion"] = {
            **svd,
            "host": host,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        write_markdown(data)
        print(f"wrote {path}")
        return
    sd = bench_stable_diffusion(args.device, dtype, args.unet_steps)
    gc.collect()
    print(
        f"SD 1.5 UNet step (batch 2, 512x512): {sd['unet_step_s']:.2f} s; "
        f"keyframe (25 steps, extrapolated): {sd['keyframe_25_steps_s']:.1f} s"
    )
    mg = bench_musicgen(args.device, dtype, args.tokens)
    gc.collect()
    print(
        f"MusicGen-melody per token (CFG): {mg['per_token_s']:.3f} s; "
        f"30 s of music (extrapolated): {mg['music_30s_s']:.1f} s"
    )
    comp = bench_compose(RECONSTRUCTION_S)
    print(f"compose 2-min 512x512 MP4 (measured): {comp['compose_s']:.1f} s")
    est = estimate_reconstruction(sd, mg, comp)
    print(
        f"2-minute reconstruction (extrapolated): {est['total_s']:.0f} s "
        f"({est['realtime_factor']:.1f}x real time)"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    # An earlier --only-svd run's figures are kept.
    svd_prev = data.get(args.device, {}).get("stable_video_diffusion")
    data[args.device] = {
        "host": host,
        "stable_diffusion_1_5": sd,
        "musicgen_melody": mg,
        "compose": comp,
        "reconstruction_2min": est,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if svd_prev:
        data[args.device]["stable_video_diffusion"] = svd_prev
    write_markdown(data)
    print(f"wrote {path}")


def devices(data: dict) -> dict:
    """The per-device entries of the results file (not the ``update_results`` sections)."""
    return {k: v for k, v in data.items() if k not in ("area", "sections", "preface_markdown")}


def write_markdown(data: dict) -> None:
    """``generation.md``: this script's table, then the sections other generation benchmarks
    merged in with ``_util.update_results`` (``bench_transitions.py``)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _util import render_markdown

    data.setdefault("area", "generation")
    data["preface_markdown"] = markdown_table(data)
    (RESULTS / "generation.json").write_text(json.dumps(data, indent=2))
    (RESULTS / "generation.md").write_text(render_markdown(data))


def markdown_table(data: dict) -> str:
    data = devices(data)
    rows = [
        "| stage | " + " | ".join(data) + " |",
        "| --- | " + " | ".join("---" for _ in data) + " |",
    ]

    def row(label: str, get) -> None:
        cells = []
        for dev in data:
            try:
                cells.append(get(data[dev]))
            except KeyError:
                cells.append("-")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    row(
        "SD 1.5 UNet step, 512x512, CFG (measured)",
        lambda d: f"{d['stable_diffusion_1_5']['unet_step_s']:.2f} s",
    )
    row(
        "SD 1.5 text encoder (measured)",
        lambda d: f"{d['stable_diffusion_1_5']['text_encoder_s']:.2f} s",
    )
    row(
        "SD 1.5 VAE decode 512x512 (measured)",
        lambda d: f"{d['stable_diffusion_1_5']['vae_decode_s']:.2f} s",
    )
    row(
        "SD 1.5 keyframe, 25 steps (extrapolated)",
        lambda d: f"{d['stable_diffusion_1_5']['keyframe_25_steps_s']:.1f} s",
    )
    row(
        "MusicGen-melody 1.5B per token, CFG (measured)",
        lambda d: f"{d['musicgen_melody']['per_token_s']:.3f} s",
    )
    row(
        "MusicGen-melody 30 s of music (extrapolated)",
        lambda d: f"{d['musicgen_melody']['music_30s_s']:.0f} s",
    )
    row(
        "EnCodec decode 30 s (measured)",
        lambda d: f"{d['musicgen_melody']['encodec_decode_30s_s']:.2f} s",
    )
    row(
        "Compose 2-min 512x512 H.264+AAC (measured)", lambda d: f"{d['compose']['compose_s']:.1f} s"
    )
    row(
        "SVD-XT UNet per frame per step, 512x512, CFG (measured, 1 vs 3 frames)",
        lambda d: f"{d['stable_video_diffusion']['per_frame_step_s']:.1f} s",
    )
    row(
        "SVD-XT clip, 25 frames x 25 steps (extrapolated)",
        lambda d: f"{d['stable_video_diffusion']['clip_25_frames_25_steps_s']:.0f} s",
    )
    row(
        "2-min reconstruction, 6 segments (extrapolated)",
        lambda d: f"{d['reconstruction_2min']['total_s']:.0f} s",
    )
    hosts = "; ".join(
        f"{dev}: {d['host'].get('gpu') or d['host']['cpu']}, {d['host']['cpu_count']} cores, "
        f"{d['host']['dtype']}, {d['measured_at']}"
        for dev, d in data.items()
    )
    return "\n".join(rows) + f"\n\nMeasured on {hosts}. Random weights, real architectures.\n"


if __name__ == "__main__":
    main()
