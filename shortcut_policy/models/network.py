"""The policy network: an observation encoder plus a chunk denoiser, built by name from the config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from torch import nn

from .obs_encoder import LowDimEncoder
from .transformer import TransformerDenoiser
from .unet1d import UNet1D

if TYPE_CHECKING:
    from ..config import PolicyConfig


BACKBONES = ["unet", "transformer"]


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
    policy: "PolicyConfig",
    obs_shapes: Mapping[str, Sequence[int]],
    action_dim: int,
    n_levels: int,
) -> ChunkDenoiser:
    """Build encoder + the configured backbone; ``n_levels`` is the objective's number of step-size levels."""
    encoder = LowDimEncoder(obs_shapes, policy.n_obs_steps)
    common = dict(action_dim=action_dim, cond_dim=encoder.out_dim, n_levels=n_levels, **policy.backbone_kwargs())
    if policy.backbone == "unet":
        denoiser: nn.Module = UNet1D(**common)
    elif policy.backbone == "transformer":
        denoiser = TransformerDenoiser(horizon=policy.horizon, n_obs_steps=policy.n_obs_steps, **common)
    else:
        raise ValueError(f"policy.backbone: expected one of {BACKBONES}, got {policy.backbone!r}")
    return ChunkDenoiser(encoder, denoiser)
