"""Torch modules of the music-supervised affect encoder (Avramidis et al., ICASSP 2022).

Private: :mod:`decoding.music_supervised` imports this module only when a model is built, so
importing the decoder does not import torch. The same names are reachable lazily as
``decoding.music_supervised.EEGEncoder`` and so on.

Shapes: EEG windows come as ``[batch x channels x features]``; the LSTM runs over the
CHANNELS (one step per channel, the band x second differential entropies of that channel as
the step's input), as in the paper.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class GradReverse(torch.autograd.Function):
    """Gradient reversal: identity forward, gradient multiplied by ``-lam`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = float(lam)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """``x`` unchanged, but the gradient flowing back through it is reversed and scaled by
    ``lam`` (the domain-adversarial trick: the discriminator learns to tell the modalities
    apart while the features below it learn to make that impossible)."""
    return GradReverse.apply(x, lam)


class AttentionPool(nn.Module):
    """Additive attention over sequence steps: a score per step, softmax over the steps,
    weighted sum of the step outputs.

    The authors' code applies softmax over a dimension of size one, so its "attention" is
    always 1 and the layer is a plain linear map; here the weights are a real distribution
    over the channels.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.score = nn.Linear(dim, 1, bias=False)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` ``[batch x steps x dim]`` -> pooled ``[batch x dim]``, weights
        ``[batch x steps]`` (each row sums to 1)."""
        weights = torch.softmax(self.score(torch.tanh(self.proj(h))).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * h).sum(dim=1), weights


class EEGEncoder(nn.Module):
    """BatchNorm over channels, LSTM ``lstm1``, LSTM ``lstm2``, dropout, attention pooling over
    the channel steps, linear map to the ``representation``-d EEG representation.

    Input ``[batch x channels x features]`` (features: bands x seconds of one channel).
    """

    def __init__(
        self,
        n_channels: int,
        n_features: int,
        lstm1: int = 128,
        lstm2: int = 256,
        representation: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(n_channels)
        self.lstm1 = nn.LSTM(n_features, lstm1, batch_first=True)
        self.lstm2 = nn.LSTM(lstm1, lstm2, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.attention = AttentionPool(lstm2)
        self.out = nn.Linear(lstm2, representation)

    def forward(
        self, x: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h, _ = self.lstm1(self.norm(x))
        h, _ = self.lstm2(h)
        pooled, weights = self.attention(self.dropout(h))
        z = self.out(pooled)
        return (z, weights) if return_attention else z


class MusicBranch(nn.Module):
    """Music tagger embedding -> Linear(D, representation), LeakyReLU(0.01), Dropout."""

    def __init__(self, music_dim: int, representation: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(music_dim, representation), nn.LeakyReLU(0.01), nn.Dropout(dropout)
        )

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.net(m)


class DomainDiscriminator(nn.Module):
    """Linear(shared, hidden), ReLU, Linear(hidden, 1): the logit of "music" (vs EEG)."""

    def __init__(self, shared: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(shared, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


class CrossModalNet(nn.Module):
    """Both branches, the shared projection and valence head, and the domain discriminator.

    ``music_dim`` None builds the EEG branch only (a model trained without music).
    """

    def __init__(
        self,
        n_channels: int,
        n_features: int,
        music_dim: int | None,
        *,
        lstm1: int = 128,
        lstm2: int = 256,
        representation: int = 128,
        shared: int = 32,
        discriminator_hidden: int = 64,
        dropout_eeg: float = 0.2,
        dropout_music: float = 0.5,
        dropout_head: float = 0.5,
    ) -> None:
        super().__init__()
        self.eeg = EEGEncoder(n_channels, n_features, lstm1, lstm2, representation, dropout_eeg)
        self.music = MusicBranch(music_dim, representation, dropout_music) if music_dim else None
        # One projection for both modalities: this is what puts them in one space.
        self.shared = nn.Sequential(nn.Linear(representation, shared), nn.LeakyReLU(0.01))
        self.head_dropout = nn.Dropout(dropout_head)
        self.head = nn.Linear(shared, 1)
        self.discriminator = (
            DomainDiscriminator(shared, discriminator_hidden) if music_dim else None
        )

    def eeg_features(self, x: torch.Tensor) -> torch.Tensor:
        """EEG windows ``[batch x channels x features]`` -> shared space ``[batch x shared]``."""
        return self.shared(self.eeg(x))

    def music_features(self, m: torch.Tensor) -> torch.Tensor:
        """Music embeddings ``[batch x D]`` -> shared space ``[batch x shared]``."""
        if self.music is None:
            raise RuntimeError("this model was built without a music branch")
        return self.shared(self.music(m))

    def valence_logit(self, z: torch.Tensor) -> torch.Tensor:
        """Shared features -> logit of positive valence ``[batch]`` (dropout in training)."""
        return self.head(self.head_dropout(z)).squeeze(-1)

    def domain_logit(self, z: torch.Tensor, lam: float) -> torch.Tensor:
        """Shared features -> logit of "music", behind the gradient reversal."""
        if self.discriminator is None:
            raise RuntimeError("this model was built without a domain discriminator")
        return self.discriminator(grad_reverse(z, lam))
