"""The audiocraft MusicGen-melody backend's worker, run by ``.venv-audiocraft/bin/python``.

audiocraft 1.3.0 pins torch 2.1 and numpy<2, so it lives in its own environment (``make
audiocraft-env``) and this file imports only the standard library, numpy, torch and audiocraft,
never recall-lab. ``generation/music_audiocraft.py`` starts it and talks to it in JSON lines:

``python audiocraft_worker.py serve CHECKPOINT [--device cpu]``
    Loads the model once, prints ``{"ready": true, "sample_rate": ..., "frame_rate": ...}``,
    then answers one request per stdin line with one reply line. A request::

        {"prompt": str, "seconds": float, "seed": int, "guidance_scale": float,
         "melody_wav": path | null, "prefix_wav": path | null, "out_wav": path}

    ``melody_wav``: the guiding melody for this window (any rate; its chroma conditions the
    music); ``prefix_wav``: audio this window continues (its codec codes are the audio
    prompt). The reply: ``{"out_wav": path, "samples": n, "prefix_samples": m}``; the WAV
    (float32) is the codec's decoding of the prompt (``m`` samples) followed by the new audio.
``python audiocraft_worker.py make-tiny FOLDER``
    Writes a tiny random checkpoint in the layout below, for tests.

Checkpoint folder (audiocraft's own layout, nothing is downloaded)::

    state_dict.bin              # the LM: {"xp.cfg": yaml, "best_state": state dict}
    compression_state_dict.bin  # EnCodec 32 kHz, same format
    t5/                         # the T5 text encoder (Hugging Face layout, e.g. t5-base)
    demucs/                     # the stem separator the chroma conditioner uses (htdemucs)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import wave
from pathlib import Path

# Nothing may reach the network: Hugging Face and torch.hub stay offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _read_wav(path: str):
    import numpy as np

    with wave.open(path, "rb") as w:
        rate, n, ch, width = w.getframerate(), w.getnframes(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(n)
    if width != 2:
        raise ValueError(f"{path}: 16-bit PCM expected")
    x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    return x.reshape(-1, ch).T, rate


def _write_wav(path: str, audio, rate: int) -> None:
    import numpy as np

    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def use_local_files(folder: Path) -> None:
    """Point audiocraft's T5 and demucs loaders at ``folder/t5`` and ``folder/demucs``."""
    import transformers
    from audiocraft.modules import conditioners
    from demucs import pretrained

    t5 = folder / "t5"
    if not (t5 / "config.json").exists():
        raise FileNotFoundError(f"{t5}: the T5 text encoder folder is missing")
    d_model = json.loads((t5 / "config.json").read_text())["d_model"]
    for name in conditioners.T5Conditioner.MODELS:
        conditioners.T5Conditioner.MODELS_DIMS[name] = d_model

    class _Tokenizer:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return transformers.AutoTokenizer.from_pretrained(t5, local_files_only=True)

    class _Encoder:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return transformers.T5EncoderModel.from_pretrained(t5, local_files_only=True)

    conditioners.T5Tokenizer = _Tokenizer
    conditioners.T5EncoderModel = _Encoder
    stems = folder / "demucs"
    local_get_model = pretrained.get_model

    def get_model(name, repo=None):
        if not stems.is_dir():
            raise FileNotFoundError(f"{stems}: the demucs stem model folder is missing")
        return local_get_model(name, repo=stems)

    pretrained.get_model = get_model


def load(folder: Path, device: str):
    from audiocraft.models import MusicGen
    from audiocraft.models.loaders import load_compression_model, load_lm_model

    use_local_files(folder)
    lm = load_lm_model(folder, device=device)
    codec = load_compression_model(folder, device=device)
    if "self_wav" in lm.condition_provider.conditioners:
        lm.condition_provider.conditioners["self_wav"].match_len_on_eval = True
        lm.condition_provider.conditioners["self_wav"]._use_masking = False
    return MusicGen(str(folder), codec, lm)


def answer(model, req: dict) -> dict:
    import torch
    from audiocraft.data.audio_utils import convert_audio

    sr, frame_rate = model.sample_rate, model.frame_rate
    hop = round(sr / frame_rate)
    prefix = None
    if req.get("prefix_wav"):
        x, rate = _read_wav(req["prefix_wav"])
        prefix = convert_audio(torch.from_numpy(x), rate, sr, 1)[None].to(model.device)
    prefix_s = prefix.shape[-1] / sr if prefix is not None else 0.0
    model.set_generation_params(
        duration=prefix_s + float(req["seconds"]),
        cfg_coef=float(req.get("guidance_scale", 3.0)),
        top_k=min(250, int(model.lm.card)),  # the released 250, within a tiny codebook
    )
    melody = None
    if req.get("melody_wav"):
        x, rate = _read_wav(req["melody_wav"])
        melody = [convert_audio(torch.from_numpy(x), rate, sr, 1).to(model.device)]
    torch.manual_seed(int(req.get("seed", 0)))
    attributes, prompt_tokens = model._prepare_tokens_and_attributes(
        [req["prompt"]], prefix, melody_wavs=melody
    )
    with torch.no_grad():
        tokens = model._generate_tokens(attributes, prompt_tokens, progress=False)
        audio = model.compression_model.decode(tokens, None)[0, 0].float().cpu().numpy()
    n_prefix = prompt_tokens.shape[-1] * hop if prompt_tokens is not None else 0
    _write_wav(req["out_wav"], audio, sr)
    return {"out_wav": req["out_wav"], "samples": len(audio), "prefix_samples": int(n_prefix)}


def serve(folder: Path, device: str) -> int:
    model = load(folder, device)
    out = sys.stdout
    print(
        json.dumps(
            {
                "ready": True,
                "sample_rate": int(model.sample_rate),
                "frame_rate": float(model.frame_rate),
            }
        ),
        file=out,
        flush=True,
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = answer(model, json.loads(line))
        except Exception as exc:  # the caller turns it into one error line
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), file=out, flush=True)
    return 0


def make_tiny(folder: Path, seed: int = 0) -> None:
    """A tiny random MusicGen-melody in audiocraft's layout (32 kHz, 50 Hz, 4 codebooks)."""
    import torch
    import transformers
    from audiocraft.models import builders
    from demucs.pretrained import demucs_unittest
    from demucs.states import serialize_model
    from omegaconf import OmegaConf

    folder.mkdir(parents=True, exist_ok=False)
    torch.manual_seed(seed)
    # T5: tiny random encoder and a word-level tokenizer, written locally.
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for (
        w
    ) in "a the calm happy sad dark bright warm tune melody piece slow fast minor major".split():
        vocab[w] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )
    fast.save_pretrained(folder / "t5")
    t5 = transformers.T5EncoderModel(
        transformers.T5Config(
            vocab_size=len(vocab), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2
        )
    )
    t5.save_pretrained(folder / "t5")
    # demucs: the package's own unit-test model, as a local repository named htdemucs.
    (folder / "demucs").mkdir()
    stem = demucs_unittest()
    torch.save(
        serialize_model(stem, OmegaConf.create({}), half=False), folder / "demucs" / "htdemucs.th"
    )

    common = {"device": "cpu", "dtype": "float32"}
    codec_cfg = OmegaConf.create(
        {
            **common,
            "compression_model": "encodec",
            "encodec": {
                "autoencoder": "seanet",
                "quantizer": "rvq",
                "sample_rate": 32000,
                "channels": 1,
                "causal": False,
                "renormalize": False,
            },
            "seanet": {
                "dimension": 16,
                "channels": 1,
                "causal": False,
                "n_filters": 4,
                "n_residual_layers": 1,
                "ratios": [8, 5, 4, 4],
                "activation": "ELU",
                "activation_params": {"alpha": 1.0},
                "norm": "weight_norm",
                "norm_params": {},
                "kernel_size": 7,
                "last_kernel_size": 7,
                "residual_kernel_size": 3,
                "dilation_base": 2,
                "pad_mode": "constant",
                "true_skip": True,
                "compress": 2,
                "lstm": 1,
                "disable_norm_outer_blocks": 0,
                "encoder": {},
                "decoder": {},
            },
            "rvq": {
                "n_q": 4,
                "q_dropout": False,
                "bins": 64,
                "decay": 0.99,
                "kmeans_init": False,
                "kmeans_iters": 1,
                "threshold_ema_dead_code": 2,
            },
        }
    )
    codec = builders.get_compression_model(codec_cfg)
    with torch.no_grad():
        codec.quantizer(torch.randn(8, 16, 64), 50)  # initialise the codebooks
    torch.save(
        {"xp.cfg": OmegaConf.to_yaml(codec_cfg), "best_state": codec.state_dict()},
        folder / "compression_state_dict.bin",
    )
    lm_cfg = OmegaConf.create(
        {
            **common,
            "lm_model": "transformer_lm",
            "dataset": {"segment_duration": 30.0},
            "transformer_lm": {
                "n_q": 4,
                "card": 64,
                "dim": 16,
                "num_heads": 2,
                "num_layers": 1,
                "hidden_scale": 2,
                "norm": "layer_norm",
                "norm_first": True,
                "bias_ff": False,
                "bias_attn": False,
                "bias_proj": False,
                "past_context": None,
                "causal": True,
                "custom": False,
                "memory_efficient": False,
                "attention_as_float32": False,
                "layer_scale": None,
                "positional_embedding": "sin",
                "xpos": False,
                "checkpointing": "none",
                "weight_init": None,
                "depthwise_init": None,
                "zero_bias_init": False,
                "cross_attention": False,
            },
            "codebooks_pattern": {
                "modeling": "delay",
                "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0, "empty_initial": 0},
            },
            "attribute_dropout": {"args": {"active_on_eval": False}},
            "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": 3.0},
            "fuser": {
                "cross_attention_pos_emb": False,
                "cross_attention_pos_emb_scale": 1,
                "sum": [],
                "prepend": ["self_wav", "description"],
                "cross": [],
                "input_interpolate": [],
            },
            "conditioners": {
                "args": {},
                "description": {
                    "model": "t5",
                    "t5": {
                        "name": "t5-base",
                        "finetune": False,
                        "word_dropout": 0.0,
                        "normalize_text": False,
                    },
                },
                "self_wav": {
                    "model": "chroma_stem",
                    "chroma_stem": {
                        "sample_rate": 32000,
                        "n_chroma": 12,
                        "radix2_exp": 14,
                        "argmax": True,
                        "match_len_on_eval": True,
                        "eval_wavs": None,
                        "n_eval_wavs": 0,
                    },
                },
            },
        }
    )
    use_local_files(folder)
    lm = builders.get_lm_model(lm_cfg)
    torch.save(
        {"xp.cfg": OmegaConf.to_yaml(lm_cfg), "best_state": lm.state_dict()},
        folder / "state_dict.bin",
    )
    (folder / "RECALL_LAB_TINY").write_text("tiny random audiocraft MusicGen-melody\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="audiocraft MusicGen-melody worker")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("checkpoint", type=Path)
    s.add_argument("--device", default="cpu")
    t = sub.add_parser("make-tiny")
    t.add_argument("folder", type=Path)
    args = p.parse_args(argv)
    if args.cmd == "make-tiny":
        make_tiny(args.folder)
        print(f"wrote {args.folder}")
        return 0
    return serve(args.checkpoint, args.device)


if __name__ == "__main__":
    raise SystemExit(main())
