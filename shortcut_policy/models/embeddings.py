"""Embeddings of the two scalars every denoiser is conditioned on: the noise level ``t`` and the step size ``d``."""

from __future__ import annotations

import math

import torch
from torch import nn

# t lives in [0, 1]; sinusoids need a wider range to separate nearby levels, so t is scaled first
# (1000 puts t = 1/128 apart by ~8 "positions", like DDPM's integer timesteps).
T_SCALE = 1000.0


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
        args = t.float()[:, None] * self.scale * self.freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class TimeEmbedding(nn.Module):
    """t in [0, 1] -> sinusoid -> MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, dim * 4), nn.Mish(), nn.Linear(dim * 4, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        return self.net(t)


class LevelEmbedding(nn.Module):
    """The step size d = 2^-level as a learned table indexed by the integer level log2(1/d).

    The paper's code feeds the integer log2(1/d) to the sinusoidal embedder made for t in [0, 1]
    (its issue #11); a table has no such scale mismatch, and there are only log2(M)+1 levels.
    """

    def __init__(self, n_levels: int, dim: int) -> None:
        super().__init__()
        if n_levels < 1:
            raise ValueError(f"LevelEmbedding n_levels: expected >= 1, got {n_levels}")
        self.n_levels = n_levels
        self.table = nn.Embedding(n_levels, dim)
        self.mlp = nn.Sequential(nn.Mish(), nn.Linear(dim, dim))

    def forward(self, level: torch.Tensor) -> torch.Tensor:  # (B,) long -> (B, dim)
        return self.mlp(self.table(level.long()))


class ConditionEmbedding(nn.Module):
    """Concatenation of the t embedding, the d embedding and the observation features: the FiLM input."""

    def __init__(self, cond_dim: int, embed_dim: int, n_levels: int) -> None:
        super().__init__()
        self.time = TimeEmbedding(embed_dim)
        self.level = LevelEmbedding(n_levels, embed_dim)
        self.out_dim = 2 * embed_dim + cond_dim

    def forward(self, t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.time(t), self.level(level), cond], dim=-1)  # (B, out_dim)
