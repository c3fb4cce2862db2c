"""1D-convolutional U-Net over action chunks with FiLM-conditioned residual blocks (GroupNorm, Mish).

The shape follows Diffusion Policy's ConditionalUnet1D: the chunk is a (B, horizon, action_dim)
sequence treated as channels=action_dim over time, and every residual block is modulated by a
global condition (t, the step size d and the observation features).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..utils.checks import at_least
from .embeddings import T_SCALE, ConditionEmbedding


@dataclass
class UNetConfig:
    down_dims: list[int] = field(default_factory=lambda: [32, 64, 128])  # CPU default; wider: [64, 128, 256], "paper": [256, 512, 1024]
    embed_dim: int = 64  # width of the t and d embeddings
    kernel_size: int = 5
    n_groups: int = 8

    def __post_init__(self) -> None:
        at_least("policy.unet", self, 1, "n_groups")
        if not self.down_dims or any(w < 1 or w % self.n_groups for w in self.down_dims):
            raise ValueError(
                f"policy.unet.down_dims: expected a non-empty list of multiples of n_groups={self.n_groups}, got {self.down_dims}"
            )
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:  # an even kernel would change the chunk's length
            raise ValueError(f"policy.unet.kernel_size: expected an odd number >= 1, got {self.kernel_size}")
        if self.embed_dim < 2 or self.embed_dim % 2:
            raise ValueError(f"policy.unet.embed_dim: expected an even number >= 2 (sinusoids), got {self.embed_dim}")


_DEFAULTS = UNetConfig()  # UNet1D's keyword defaults, for direct construction


class ConvBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(
            nn.Conv1d(in_ch, out_ch, kernel_size, padding=kernel_size // 2),
            nn.GroupNorm(n_groups, out_ch),
            nn.Mish(),
        )


class FiLMResBlock(nn.Module):
    """Two conv blocks; the condition scales and shifts the first one's output per channel."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, kernel_size: int, n_groups: int) -> None:
        super().__init__()
        self.block1 = ConvBlock(in_ch, out_ch, kernel_size, n_groups)
        self.block2 = ConvBlock(out_ch, out_ch, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_ch))
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:  # x (B, C, T), cond (B, D)
        h = self.block1(x)
        scale, shift = self.film(cond)[:, :, None].chunk(2, dim=1)
        h = self.block2(h * (1 + scale) + shift)
        return h + self.skip(x)


class UNet1D(nn.Module):
    """Denoiser of action chunks: ``forward(x (B,H,A), t (B,), d (B,), cond (B,C)) -> (B,H,A)``."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: Sequence[int] = tuple(_DEFAULTS.down_dims),  # the config's defaults, for direct use
        embed_dim: int = _DEFAULTS.embed_dim,
        kernel_size: int = _DEFAULTS.kernel_size,
        n_groups: int = _DEFAULTS.n_groups,
        embedding_scale: float = T_SCALE,  # t and d's stretch before their sinusoids (policy.embedding_scale)
    ) -> None:
        super().__init__()
        UNetConfig(list(down_dims), embed_dim, kernel_size, n_groups)  # its checks, for direct use too
        self.condition = ConditionEmbedding(cond_dim, embed_dim, embedding_scale)
        film_dim = self.condition.out_dim
        widths = [action_dim, *down_dims]
        pairs = list(zip(widths[:-1], widths[1:]))

        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(pairs):
            last = i == len(pairs) - 1
            self.down.append(
                nn.ModuleList(
                    [
                        FiLMResBlock(c_in, c_out, film_dim, kernel_size, n_groups),
                        FiLMResBlock(c_out, c_out, film_dim, kernel_size, n_groups),
                        nn.Conv1d(c_out, c_out, 3, stride=2, padding=1) if not last else nn.Identity(),
                    ]
                )
            )
        mid = down_dims[-1]
        self.mid = nn.ModuleList(
            [FiLMResBlock(mid, mid, film_dim, kernel_size, n_groups) for _ in range(2)]
        )
        self.up = nn.ModuleList()
        # As in DP, the skip of the finest level is left out: the up path starts from the
        # coarsest skip and upsamples once per downsample.
        for c_in, c_out in reversed(pairs[1:]):
            self.up.append(
                nn.ModuleList(
                    [
                        FiLMResBlock(c_out * 2, c_in, film_dim, kernel_size, n_groups),
                        FiLMResBlock(c_in, c_in, film_dim, kernel_size, n_groups),
                        nn.ConvTranspose1d(c_in, c_in, 4, stride=2, padding=1),
                    ]
                )
            )
        self.head = nn.Sequential(
            ConvBlock(down_dims[0], down_dims[0], kernel_size, n_groups),
            nn.Conv1d(down_dims[0], action_dim, 1),
        )
        self.n_downsamples = len(pairs) - 1

    def forward(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        film = self.condition(t, d, cond)  # (B, film_dim)
        h = x.transpose(1, 2)  # (B, A, H)
        skips = []
        for res1, res2, downsample in self.down:
            h = res2(res1(h, film), film)
            skips.append(h)
            h = downsample(h)
        for block in self.mid:
            h = block(h, film)
        for res1, res2, upsample in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = upsample(res2(res1(h, film), film))
        return self.head(h).transpose(1, 2)  # (B, H, A)
