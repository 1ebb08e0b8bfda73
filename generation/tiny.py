"""Tiny random models of every kind the pipeline uses, for smoke tests and CI.

Each model is built from a small configuration of the real architecture, with random weights,
and saved with ``save_pretrained`` in the same Hugging Face layout as the real model, so the
pipeline loads it through exactly the code path it uses for the real one. Tokenizers are written
locally (character-level vocabularies); nothing is downloaded.

The tiny Stable Diffusion works at 64x64 pixels (VAE scale factor 2, like the diffusers test
suite's dummy components); the tiny MusicGen-melody keeps the real audio codec rate (32 kHz,
50 codec frames per second, 4 codebooks) and chroma settings so durations match the real model.
The tiny Stable Video Diffusion and AnimateDiff motion adapter make 64x64 clips that fit the tiny
Stable Diffusion's keyframes.
The tiny audio tagger (Audio Spectrogram Transformer) keeps the real 16 kHz, 128-mel input with a
3 s window; the tiny face-expression ViT works on 32x32 frames.
"""

from __future__ import annotations

import json
import string
import warnings
from pathlib import Path
from typing import Any

from generation.models import SPECS_BY_KEY

TINY_MARKER = "RECALL_LAB_TINY"

# Characters every tiny tokenizer knows; anything else maps to the unknown token.
_CHARS = string.ascii_letters + string.digits + string.punctuation


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    bs = list(range(ord("!"), ord("~") + 1))
    bs += list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def clip_tokenizer(folder: Path) -> int:
    """Write a character-level CLIP BPE tokenizer (vocab.json, merges.txt); return vocab size."""
    from transformers import CLIPTokenizer

    alphabet = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for ch in alphabet:
        vocab[ch] = len(vocab)
    for ch in alphabet:
        vocab[ch + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = 77
    tok.save_pretrained(folder)
    return len(vocab)


def roberta_tokenizer(folder: Path) -> int:
    """Write a character-level byte-level BPE (RoBERTa) tokenizer for CLAP; return vocab size."""
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in _bytes_to_unicode().values():
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tok = RobertaTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = 512
    tok.save_pretrained(folder)
    return len(vocab)


def t5_tokenizer(folder: Path) -> int:
    """Write a character-level Unigram (T5) tokenizer; return vocab size."""
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -1.0)]
    pieces += [(c, -2.0) for c in _CHARS] + [("▁" + c, -1.5) for c in string.ascii_lowercase]
    tok = T5TokenizerFast(vocab=pieces, extra_ids=0)
    tok.save_pretrained(folder)
    return len(tok)


def _mark(folder: Path) -> None:
    (folder / TINY_MARKER).write_text("tiny random weights for tests; not a real model\n")


def make_tiny_stable_diffusion(folder: Path, seed: int = 0) -> None:
    """Tiny SD 1.5-architecture pipeline (UNet, VAE, CLIP text encoder, tokenizer, scheduler)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = folder / "tokenizer"
    vocab_size = clip_tokenizer(tok_dir)
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, local_files_only=True)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=16,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=vocab_size,
            max_position_embeddings=77,
        )
    )
    # Same scheduler settings as SD 1.5's scheduler_config.json (scaled_linear betas).
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipe = StableDiffusionImg2ImgPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    _mark(folder)


def make_tiny_controlnet(folder: Path, seed: int = 0) -> None:
    """Tiny ControlNet matching the tiny UNet (scribble conditioning at pixel resolution)."""
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    net = ControlNetModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        in_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        cross_attention_dim=32,
        conditioning_embedding_out_channels=(16, 32),
        norm_num_groups=16,
    )
    net.save_pretrained(folder)
    _mark(folder)


def musicgen_melody_preprocessor_config() -> dict[str, Any]:
    """The chroma feature-extractor settings of facebook/musicgen-melody.

    These are ``MusicgenMelodyFeatureExtractor``'s defaults in transformers (32 kHz, n_fft 16384,
    hop 4096, 12 chroma bins, 30 s chunks), which the released checkpoint uses.
    """
    return {
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
        "feature_size": 12,
        "sampling_rate": 32000,
        "hop_length": 4096,
        "chunk_length": 30,
        "n_fft": 16384,
        "num_chroma": 12,
        "padding_side": "right",
        "padding_value": 0.0,
        "return_attention_mask": True,
        "stem_indices": [3, 2],
        "processor_class": "MusicgenMelodyProcessor",
    }


def make_tiny_musicgen_melody(folder: Path, seed: int = 0) -> None:
    """Tiny MusicGen-melody: T5 text encoder, EnCodec (32 kHz, 4 codebooks) and LM decoder."""
    import torch
    from transformers import (
        EncodecConfig,
        GenerationConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = t5_tokenizer(folder)
    codebook = 64
    text = T5Config(
        vocab_size=vocab_size,
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=1,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    codec = EncodecConfig(
        sampling_rate=32000,
        audio_channels=1,
        hidden_size=16,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 5, 4, 4],
        codebook_size=codebook,
        codebook_dim=16,
        # 4 codebooks at 50 Hz: the real model's 2.2 kbps with 2048-entry codebooks (11 bits);
        # with 64 entries (6 bits) the same 4 codebooks are 1.2 kbps.
        target_bandwidths=[1.2],
        num_lstm_layers=1,
        normalize=False,
        use_causal_conv=False,
        norm_type="weight_norm",
    )
    decoder = MusicgenMelodyDecoderConfig(
        vocab_size=codebook,
        hidden_size=16,
        num_hidden_layers=1,
        ffn_dim=32,
        num_attention_heads=2,
        num_codebooks=4,
        audio_channels=1,
        max_position_embeddings=2048,
        pad_token_id=codebook,
        bos_token_id=codebook,
    )
    config = MusicgenMelodyConfig(
        text_encoder=text.to_dict(),
        audio_encoder=codec.to_dict(),
        decoder=decoder.to_dict(),
        num_chroma=12,
        chroma_length=235,
    )
    torch.manual_seed(seed)
    model = MusicgenMelodyForConditionalGeneration(config)
    # transformers starts EnCodec's codebooks at zeros, so every code would decode to the same
    # sound; random codebooks make the audio follow the codes, as in the real model.
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
    # The released checkpoint's generation settings: sampling, top-k 250, CFG 3, 30 s max.
    model.generation_config = GenerationConfig(
        decoder_start_token_id=codebook,
        pad_token_id=codebook,
        bos_token_id=codebook,
        do_sample=True,
        top_k=250,
        guidance_scale=3.0,
        max_length=1500,
    )
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(
        json.dumps(musicgen_melody_preprocessor_config(), indent=2)
    )
    _mark(folder)


def make_tiny_clip(folder: Path, seed: int = 0) -> None:
    """Tiny CLIPModel with its processor (image processor + tokenizer)."""
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = clip_tokenizer(folder)
    tokenizer = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    text_cfg = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision_cfg = CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
    )
    torch.manual_seed(seed)
    model = CLIPModel(
        CLIPConfig(
            text_config=text_cfg.to_dict(), vision_config=vision_cfg.to_dict(), projection_dim=16
        )
    )
    model.save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    _mark(folder)


def make_tiny_clap(folder: Path, seed: int = 0) -> None:
    """Tiny ClapModel (RoBERTa text tower, HTSAT audio tower) with its processor."""
    import torch
    from transformers import (
        ClapAudioConfig,
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        ClapTextConfig,
        RobertaTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab_size = roberta_tokenizer(folder)
    tokenizer = RobertaTokenizer.from_pretrained(folder, local_files_only=True)
    text_cfg = ClapTextConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        intermediate_size=32,
        num_attention_heads=2,
        num_hidden_layers=1,
        max_position_embeddings=520,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        projection_dim=16,
    )
    # HTSAT keeps the real spectrogram geometry (64 mel bins, 256x256 "image", 4x4 patches) so
    # the real ClapFeatureExtractor output fits; only widths and depths are tiny.
    audio_cfg = ClapAudioConfig(
        spec_size=256,
        num_mel_bins=64,
        patch_size=4,
        patch_stride=(4, 4),
        window_size=8,
        depths=[1, 1],
        num_attention_heads=[1, 2],
        patch_embeds_hidden_size=8,
        hidden_size=16,
        projection_dim=16,
        num_classes=4,
    )
    torch.manual_seed(seed)
    model = ClapModel(
        ClapConfig(
            text_config=text_cfg.to_dict(), audio_config=audio_cfg.to_dict(), projection_dim=16
        )
    )
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=ClapFeatureExtractor(), tokenizer=tokenizer).save_pretrained(
        folder
    )
    _mark(folder)


def make_tiny_svd(folder: Path, seed: int = 0) -> None:
    """Tiny Stable Video Diffusion (image-to-video) pipeline.

    Spatio-temporal UNet, temporal-decoder VAE (scale factor 2, so 64x64 frames like the tiny SD)
    and a CLIP vision encoder, with the scheduler settings of the released
    ``scheduler/scheduler_config.json`` (EDM-style Euler, v-prediction, Karras sigmas). The image
    encoder keeps the real 224x224 input because the pipeline always resizes to 224 before CLIP.
    """
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=(2, 4),
        # 3 added-time ids (fps, motion bucket, noise augmentation) x addition_time_embed_dim.
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
        num_frames=4,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            projection_dim=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            intermediate_size=37,
            patch_size=32,
        )
    )
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=scheduler,
        feature_extractor=feature_extractor,
    )
    pipe.save_pretrained(folder)
    _mark(folder)


def make_tiny_motion_adapter(folder: Path, seed: int = 0) -> None:
    """Tiny AnimateDiff motion adapter matching the tiny SD UNet's blocks and norm groups."""
    import torch
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(
        block_out_channels=(32, 64),
        motion_layers_per_block=1,
        motion_norm_num_groups=16,
        motion_num_attention_heads=4,
        motion_max_seq_length=32,
    )
    adapter.save_pretrained(folder)
    _mark(folder)


# A few AudioSet class names, so the tiny tagger's head has readable labels like the real one.
_AUDIOSET_LABELS = ("Music", "Speech", "Singing", "Guitar", "Piano")


def make_tiny_ast(folder: Path, seed: int = 0) -> None:
    """Tiny Audio Spectrogram Transformer audio tagger with its feature extractor.

    Keeps the real input geometry (16 kHz, 128 mel bins, 16x16 patches with stride 10) but a
    300-frame window (3.0 s at the 10 ms hop) instead of the real 1024 frames (10.24 s), so one
    3 s music segment fills it; the head has a handful of AudioSet labels.
    """
    import torch
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    folder.mkdir(parents=True, exist_ok=True)
    max_length = 300
    config = ASTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_mel_bins=128,
        max_length=max_length,
        patch_size=16,
        frequency_stride=10,
        time_stride=10,
        id2label=dict(enumerate(_AUDIOSET_LABELS)),
        label2id={name: i for i, name in enumerate(_AUDIOSET_LABELS)},
    )
    torch.manual_seed(seed)
    ASTForAudioClassification(config).save_pretrained(folder)
    with warnings.catch_warnings():
        # Without torchaudio, transformers builds the Kaldi mel bank in numpy and warns that the
        # lowest of 128 mel filters are empty at 512-point FFT; Kaldi's own bank has the same
        # empty filters, so the real model saw them too.
        warnings.filterwarnings("ignore", "At least one mel filter has all zero values")
        extractor = ASTFeatureExtractor(
            sampling_rate=16000, num_mel_bins=128, max_length=max_length
        )
    extractor.save_pretrained(folder)
    _mark(folder)


# The seven facial expressions of trpakov/vit-face-expression (FER-2013), in its label order.
_FACE_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")


def make_tiny_vit(folder: Path, seed: int = 0) -> None:
    """Tiny ViT facial-expression classifier with its image processor.

    32x32 RGB input in 8x8 patches (16 patches and the CLS token), two layers of width 32,
    and the real model's seven expression labels; the processor resizes every frame to 32x32
    and normalises with mean and std 0.5 like the real one's (which works at 224x224).
    """
    import importlib.util

    import torch
    from transformers import ViTConfig, ViTForImageClassification

    if importlib.util.find_spec("torchvision") is not None:
        from transformers import ViTImageProcessor as Processor
    else:
        # Without torchvision transformers 5 falls back to the PIL processor with a warning;
        # both write the same preprocessor_config.json ("ViTImageProcessor").
        from transformers import ViTImageProcessorPil as Processor

    folder.mkdir(parents=True, exist_ok=True)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        num_channels=3,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        id2label=dict(enumerate(_FACE_LABELS)),
        label2id={name: i for i, name in enumerate(_FACE_LABELS)},
    )
    torch.manual_seed(seed)
    ViTForImageClassification(config).save_pretrained(folder)
    Processor(
        size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    ).save_pretrained(folder)
    _mark(folder)


BUILDERS = {
    "stable-diffusion": make_tiny_stable_diffusion,
    "controlnet-scribble": make_tiny_controlnet,
    "musicgen-melody": make_tiny_musicgen_melody,
    "clip": make_tiny_clip,
    "clap": make_tiny_clap,
    "svd": make_tiny_svd,
    "animatediff": make_tiny_motion_adapter,
    "audio-tagger": make_tiny_ast,
    "face-vit": make_tiny_vit,
}


def make_tiny_models(root: str | Path, keys: list[str] | None = None, seed: int = 0) -> list[Path]:
    """Write tiny random models for ``keys`` (default: all) under ``root``; return their folders.

    Existing model folders are never overwritten.
    """
    from data_schema.errors import RecallLabError

    root = Path(root)
    written = []
    for key in keys or list(BUILDERS):
        if key not in BUILDERS:
            raise RecallLabError(f"unknown model {key!r}; choose from {', '.join(BUILDERS)}")
        folder = root / SPECS_BY_KEY[key].folder
        if folder.exists() and any(folder.iterdir()):
            raise RecallLabError(f"{folder} already exists and is not empty; choose another DIR")
        BUILDERS[key](folder, seed=seed)
        written.append(folder)
    return written
