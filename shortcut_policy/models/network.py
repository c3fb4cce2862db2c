"""The policy network: an observation encoder plus a chunk denoiser, built by name from the config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..features import ObsSpec
from .obs_encoder import ObsEncoder
from .transformer import TransformerConfig, TransformerDenoiser
from .unet1d import UNet1D, UNetConfig

# Backbones read the run's ``PolicyConfig`` (horizon, n_obs_steps, their own ``policy.<name>`` options);
# it is typed ``Any`` here because config.py reads this registry to check ``policy.backbone``.
PolicyConfig = Any


class ChunkDenoiser(nn.Module):
    """Follows the objectives' ``Denoiser`` protocol: ``encode(obs)`` once, then ``forward`` per NFE."""

    def __init__(self, encoder: nn.Module, denoiser: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.denoiser = denoiser

    def encode(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:  # -> (B, C)
        return self.encoder(obs)

    def forward(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t, d, cond)  # (B, H, A)


def _check_unet(policy: PolicyConfig) -> None:
    factor = 2 ** (len(policy.unet.down_dims) - 1)  # each level halves the chunk's length
    if policy.horizon % factor:
        raise ValueError(
            f"policy.horizon: the U-Net with {len(policy.unet.down_dims)} levels needs a multiple of {factor}, got {policy.horizon}"
        )


def _build_unet(policy: PolicyConfig, options: UNetConfig, **common) -> nn.Module:
    return UNet1D(**common, **dataclasses.asdict(options))


def _build_transformer(policy: PolicyConfig, options: TransformerConfig, **common) -> nn.Module:
    return TransformerDenoiser(horizon=policy.horizon, n_obs_steps=policy.n_obs_steps, **common, **dataclasses.asdict(options))


@dataclass(frozen=True)
class Backbone:
    """One chunk denoiser by name: the dataclass of its options (the config's ``policy.<name>``), how it
    is built, and what it needs of the rest of the policy config."""

    config: type
    build: Callable[..., nn.Module]  # build(policy, options, action_dim=, cond_dim=, embedding_scale=)
    check: Callable[[PolicyConfig], None] = lambda policy: None


BACKBONES: dict[str, Backbone] = {
    "unet": Backbone(UNetConfig, _build_unet, _check_unet),
    "transformer": Backbone(TransformerConfig, _build_transformer),
}


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"policy.backbone: expected one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name]


def backbone_options(policy: PolicyConfig) -> Any:
    """The selected backbone's options, ``policy.<backbone>``, checked to be its options dataclass."""
    backbone = get_backbone(policy.backbone)
    options = getattr(policy, policy.backbone, None)
    if not isinstance(options, backbone.config):
        raise ValueError(f"policy.{policy.backbone}: expected {backbone.config.__name__} options (a PolicyConfig field "
                         f"named after the backbone), got {type(options).__name__}")
    return options


def build_network(policy: PolicyConfig, obs: Mapping[str, ObsSpec], action_dim: int) -> ChunkDenoiser:
    """Build the observation encoder (with ``policy.vision``'s image encoders for the rgb keys of ``obs``)
    and the configured backbone: the same network for every objective."""
    encoder = ObsEncoder(obs, policy.n_obs_steps, policy.vision)
    build = get_backbone(policy.backbone).build
    denoiser = build(policy, backbone_options(policy), action_dim=action_dim, cond_dim=encoder.out_dim,
                     embedding_scale=policy.embedding_scale)
    return ChunkDenoiser(encoder, denoiser)
