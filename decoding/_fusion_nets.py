"""Torch modules of the multimodal fusion decoder (Yin et al., arXiv 2411.00822).

Private: :mod:`decoding.fusion` imports this module only when a model is built or loaded, so
importing the decoder does not import torch.

- :class:`EEGFormer`: raw EEG windows ``[batch x channels x samples]`` -> one EEG token.
- :class:`PretrainedEncoder`: a Hugging Face Audio Spectrogram Transformer or ViT, pooled to
  one vector per window, with only its last ``n`` layers trainable.
- :class:`FusionNet`: the modality tokens (a learned "missing" token where a modality is
  absent), a learned CLS token, a shared multi-head self-attention block over them, and the
  classifier head on the CLS output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: Token order inside :class:`FusionNet`.
MODALITIES: tuple[str, ...] = ("eeg", "audio", "video")


class TransformerBlock(nn.Module):
    """Pre-norm transformer encoder block: ``x + MHA(LN(x))``, then ``x + FFN(LN(x))``.

    A hand-written block rather than ``nn.TransformerEncoder``, which warns at construction
    when ``norm_first`` disables its nested-tensor path (warnings are errors in the tests).
    """

    def __init__(self, d_model: int, heads: int, dropout: float, ff_mult: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, ff_mult * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * d_model, d_model),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch x tokens x d_model]`` -> same shape."""
        h = self.norm1(x)
        a, _ = self.attn(h, h, h, need_weights=False)
        x = x + self.drop(a)
        return x + self.drop(self.ff(self.norm2(x)))


def _stack(d_model: int, heads: int, depth: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(d_model, heads, dropout) for _ in range(depth)))


class EEGFormer(nn.Module):
    """EEGformer (Wan et al. 2023), small and configurable: raw EEG -> one EEG token.

    1. A depth-wise 1-D CNN over time, per channel: a grouped convolution gives ``filters``
       feature maps per channel, then two depth-wise convolutions with stride 2 (each feature
       map on its own), each followed by BatchNorm and GELU.
    2. The time axis is average-pooled to ``segments x points``; each (channel, segment) pair
       becomes a token (its ``filters x points`` values through a linear map to ``d_model``),
       plus a learned channel embedding and a learned segment embedding.
    3. Regional transformer: attention across the channels, within each time segment.
    4. Synchronous transformer: attention across all channel x segment tokens at once.
    5. Temporal transformer: the tokens averaged over the channels, attention across the time
       segments.
    6. Mean over the segments and LayerNorm: one token of width ``d_model``.

    Simplifications of the published model: the synchronous stage attends over all channel x
    segment tokens instead of across the CNN's feature maps; the CNN decoder that ends the
    paper's model is replaced by mean pooling to one token (the fusion block and its head do
    the classification); ``depth`` pre-norm blocks per stage instead of the paper's deeper
    stacks; the segment count is a setting (time is pooled adaptively, so any window length
    works).

    Parameters
    ----------
    n_channels
        EEG channels of the input.
    d_model, heads, depth, dropout
        Token width, attention heads, blocks per transformer stage, dropout.
    filters
        CNN feature maps per channel.
    kernel
        CNN kernel length in samples (odd).
    segments
        Time segments (tokens along time).
    points
        Pooled time points per segment that form a token.
    """

    def __init__(
        self,
        n_channels: int,
        d_model: int = 64,
        heads: int = 4,
        depth: int = 1,
        dropout: float = 0.1,
        filters: int = 8,
        kernel: int = 9,
        segments: int = 4,
        points: int = 4,
    ) -> None:
        super().__init__()
        c, f, pad = n_channels, filters, kernel // 2
        self.n_channels, self.filters, self.segments, self.points = c, f, segments, points
        self.cnn = nn.Sequential(
            nn.Conv1d(c, c * f, kernel, padding=pad, groups=c),
            nn.BatchNorm1d(c * f),
            nn.GELU(),
            nn.Conv1d(c * f, c * f, kernel, stride=2, padding=pad, groups=c * f),
            nn.BatchNorm1d(c * f),
            nn.GELU(),
            nn.Conv1d(c * f, c * f, kernel, stride=2, padding=pad, groups=c * f),
            nn.BatchNorm1d(c * f),
            nn.GELU(),
        )
        self.pool = nn.AdaptiveAvgPool1d(segments * points)
        self.embed = nn.Linear(f * points, d_model)
        self.channel_embedding = nn.Parameter(torch.randn(c, d_model) * 0.02)
        self.segment_embedding = nn.Parameter(torch.randn(segments, d_model) * 0.02)
        self.regional = _stack(d_model, heads, depth, dropout)
        self.synchronous = _stack(d_model, heads, depth, dropout)
        self.temporal = _stack(d_model, heads, depth, dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``[batch x channels x samples]`` -> EEG token ``[batch x d_model]``."""
        b, c, m = x.shape[0], self.n_channels, self.segments
        h = self.pool(self.cnn(x))  # [b, c * f, m * p]
        h = h.view(b, c, self.filters, m, self.points).permute(0, 1, 3, 2, 4)
        tok = self.embed(h.reshape(b, c, m, self.filters * self.points))
        tok = tok + self.channel_embedding[None, :, None] + self.segment_embedding[None, None]
        d = tok.shape[-1]
        # Regional: one sequence of channels per (window, segment).
        r = self.regional(tok.transpose(1, 2).reshape(b * m, c, d))
        # Synchronous: every channel x segment token of a window in one sequence.
        s = self.synchronous(r.reshape(b, m * c, d)).view(b, m, c, d)
        # Temporal: one token per segment.
        t = self.temporal(s.mean(dim=2))
        return self.norm(t.mean(dim=1))


def _layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a Hugging Face ViT-family model (``layers`` in transformers 5,
    ``encoder.layer`` before)."""
    if isinstance(getattr(model, "layers", None), nn.ModuleList):
        return model.layers
    return model.encoder.layer


class PretrainedEncoder(nn.Module):
    """A pretrained transformer (AST or ViT base model) pooled to one vector per input.

    Parameters
    ----------
    base
        The base model (``ASTModel`` or ``ViTModel``, e.g. ``ASTForAudioClassification(...)
        .base_model``).
    kind
        ``"audio"``: the AST's pooled output (mean of the CLS and distillation tokens of the
        final layer-normed state) from ``input_values`` ``[batch x frames x mel]``.
        ``"video"``: the ViT's CLS token of the final layer-normed state from
        ``pixel_values`` ``[batch x frames x 3 x H x W]``, averaged over the frames.
    trainable_layers
        The last ``n`` encoder layers (and the final LayerNorm) are fine-tuned; 0 freezes the
        whole model.
    """

    def __init__(self, base: nn.Module, kind: str, trainable_layers: int = 0) -> None:
        super().__init__()
        self.base, self.kind = base, kind
        self.dim = int(base.config.hidden_size)
        self.n_layers = len(_layers(base))
        self.set_trainable(trainable_layers)

    def set_trainable(self, n: int) -> None:
        """Freeze everything but the last ``n`` layers and, when ``n > 0``, the final norm."""
        self.trainable_layers = max(0, min(int(n), self.n_layers))
        for p in self.base.parameters():
            p.requires_grad_(False)
        if self.trainable_layers:
            for layer in list(_layers(self.base))[-self.trainable_layers :]:
                for p in layer.parameters():
                    p.requires_grad_(True)
            for p in self.base.layernorm.parameters():
                p.requires_grad_(True)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned parameters (empty when frozen), by their name in :attr:`base`."""
        return {k: p.detach().cpu() for k, p in self.base.named_parameters() if p.requires_grad}

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Preprocessed inputs -> ``[batch x dim]`` (see ``kind``)."""
        if self.kind == "audio":
            return self.base(input_values=inputs).pooler_output
        b, k = inputs.shape[:2]
        out = self.base(pixel_values=inputs.flatten(0, 1)).last_hidden_state[:, 0]
        return out.view(b, k, -1).mean(dim=1)


class Projection(nn.Module):
    """Backbone vector -> ``d_model`` token: fixed standardisation (training-row statistics
    of the backbone's initial output, stored as buffers), then a linear map."""

    def __init__(self, dim: int, d_model: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.linear = nn.Linear(dim, d_model)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.linear((e - self.mean) / self.scale)


class FusionNet(nn.Module):
    """Modality tokens + CLS through a shared multi-head self-attention block, then a head.

    Parameters
    ----------
    modalities
        The modalities this model reads (a subset of :data:`MODALITIES`); the others are
        always the learned "missing" token.
    n_channels
        EEG channels (used when ``"eeg"`` is read).
    audio_dim, video_dim
        Backbone output sizes (used when audio / video are read).
    n_classes
        Classifier outputs.
    d_model, heads, dropout
        Token width, attention heads, dropout.
    fusion_depth
        Shared attention blocks over the tokens (1 as published).
    eeg
        Keyword arguments of :class:`EEGFormer` (``depth``, ``filters``, ``kernel``,
        ``segments``, ``points``).
    """

    def __init__(
        self,
        modalities: tuple[str, ...],
        n_channels: int,
        audio_dim: int | None,
        video_dim: int | None,
        n_classes: int,
        *,
        d_model: int = 64,
        heads: int = 4,
        dropout: float = 0.1,
        fusion_depth: int = 1,
        eeg: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.modalities = tuple(modalities)
        self.eeg = (
            EEGFormer(n_channels, d_model, heads, dropout=dropout, **(eeg or {}))
            if "eeg" in modalities
            else None
        )
        self.audio = Projection(audio_dim, d_model) if "audio" in modalities else None
        self.video = Projection(video_dim, d_model) if "video" in modalities else None
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.missing = nn.Parameter(torch.randn(len(MODALITIES), d_model) * 0.02)
        # Which slot a token sits in (CLS, EEG, audio, video): the block is permutation-blind.
        self.slot = nn.Parameter(torch.randn(1 + len(MODALITIES), d_model) * 0.02)
        self.fusion = _stack(d_model, heads, fusion_depth, dropout)
        self.norm = nn.LayerNorm(d_model)
        self.head_dropout = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def tokens(
        self,
        eeg: torch.Tensor | None,
        audio: torch.Tensor | None,
        video: torch.Tensor | None,
        batch: int,
    ) -> torch.Tensor:
        """Branch outputs -> modality tokens ``[batch x 3 x d_model]`` (zeros for modalities
        this model does not read or that are not given; :meth:`fuse` masks them)."""
        zeros = self.cls.new_zeros(batch, self.cls.shape[-1])
        out = [
            branch(x) if branch is not None and x is not None else zeros
            for branch, x in ((self.eeg, eeg), (self.audio, audio), (self.video, video))
        ]
        return torch.stack(out, dim=1)

    def fuse(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Tokens ``[batch x 3 x d]`` and the mask of present modalities ``[batch x 3]``
        -> fused representation ``[batch x d]`` (the CLS output)."""
        keep = present.to(torch.bool).unsqueeze(-1)
        tok = torch.where(keep, tokens, self.missing.unsqueeze(0).expand_as(tokens))
        x = torch.cat([self.cls.expand(tok.shape[0], -1, -1), tok], dim=1) + self.slot
        return self.norm(self.fusion(x)[:, 0])

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Fused representation ``[batch x d]`` -> class logits ``[batch x n_classes]``."""
        return self.head(self.head_dropout(z))
