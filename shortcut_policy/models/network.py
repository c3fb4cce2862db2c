"""The policy network: an observation encoder plus a chunk denoiser, built by name from the config."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from .obs_encoder import LowDimEncoder
from .unet1d import UNet1D


class ChunkDenoiser(nn.Module):
    """Follows the objectives' ``Denoiser`` protocol: ``encode(obs)`` once, then ``forward`` per NFE."""

    def __init__(self, encoder: nn.Module, denoiser: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.denoiser = denoiser

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:  # -> (B, C)
        return self.encoder(obs)

    def forward(self, x: torch.Tensor, t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, level, cond)  # (B, H, A)


def build_network(
    backbone: str,
    backbone_kwargs: Mapping,
    obs_shapes: Mapping[str, Sequence[int]],
    n_obs_steps: int,
    action_dim: int,
    n_levels: int,
) -> ChunkDenoiser:
    """Build encoder + denoiser; ``n_levels`` is the objective's number of step-size levels."""
    encoder = LowDimEncoder(obs_shapes, n_obs_steps)
    if backbone == "unet":
        denoiser = UNet1D(action_dim=action_dim, cond_dim=encoder.out_dim, n_levels=n_levels, **backbone_kwargs)
    else:
        raise ValueError(f"policy.backbone: expected one of ['unet'], got {backbone!r}")
    return ChunkDenoiser(encoder, denoiser)
