"""Embeddings of the two scalars every denoiser is conditioned on: the noise level ``t`` and the step size ``d``."""

from __future__ import annotations

import math

import torch
from torch import nn

# t and d live in [0, 1]; sinusoids need a wider range to separate nearby values, so they are scaled
# first, by the run's ``policy.embedding_scale``. 100 puts d = 1/128 and 1/64 apart by about one radian at
# the highest frequency. Not 1000 (DDPM's integer timesteps): MeanFlow differentiates the network along t and
# d, and at 1000 the sinusoids make that derivative, and so its targets, explode (docs/results/one_step.md).
T_SCALE = 100.0  # policy.embedding_scale's default, and that of direct construction (the image DiT, tests)


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal features of a continuous scalar in [0, 1]."""

    def __init__(self, dim: int, scale: float = T_SCALE) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"SinusoidalEmbedding dim: expected an even number, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = scale

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        args = t.to(self.freqs.dtype)[:, None] * self.scale * self.freqs[None]  # the model's precision
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ScalarEmbedding(nn.Module):
    """A scalar in [0, 1] -> sinusoid -> MLP: the noise level ``t``, or the step size ``d``."""

    def __init__(self, dim: int, scale: float = T_SCALE) -> None:
        super().__init__()
        self.net = nn.Sequential(SinusoidalEmbedding(dim, scale), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        return self.net(t)


class ConditionEmbedding(nn.Module):
    """Concatenation of the t embedding, the d embedding and the observation features: the FiLM input.

    The step size is real-valued, so that any objective can ask for any step: shortcut's levels are
    its powers of two d = 2^-k, MeanFlow's interval (t, t + d) any d in [0, 1 - t], and objectives
    that ignore it pass d = 0 (the instantaneous velocity). The paper's code feeds the integer
    log2(1/d) to the embedder made for t in [0, 1] (its issue #11); here d itself is embedded, on t's
    scale, by a second embedder of the same kind.
    """

    def __init__(self, cond_dim: int, embed_dim: int, scale: float = T_SCALE) -> None:
        super().__init__()
        self.time = ScalarEmbedding(embed_dim, scale)
        self.step = ScalarEmbedding(embed_dim, scale)
        self.out_dim = 2 * embed_dim + cond_dim

    def forward(self, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.time(t), self.step(d), cond], dim=-1)  # (B, out_dim)
