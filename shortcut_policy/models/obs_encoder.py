"""Observation encoders: normalized observation history -> one conditioning vector per sample."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn


class LowDimEncoder(nn.Module):
    """Concatenates low-dimensional observation keys over the history window, as Diffusion Policy does.

    Input ``obs[key]``: (B, n_obs_steps, *shape_key) with a 1-D or 2-D ``shape_key``; a 2-D key, such
    as the (9, 2) keypoints of Diffusion Policy's own Push-T store, is flattened per frame. Output
    (B, n_obs_steps * sum(numel(shape_key))), frame-major (all keys of frame 0, then frame 1, ...), so
    a backbone can view it as one token per frame. Images (3-D shapes) need an image encoder and are
    refused.
    """

    def __init__(self, obs_shapes: Mapping[str, Sequence[int]], n_obs_steps: int) -> None:
        super().__init__()
        for key, shape in obs_shapes.items():
            if len(shape) not in (1, 2):
                hint = " (an image: this policy has no image encoder, leave it out of env.obs_keys)" if len(shape) == 3 else ""
                raise ValueError(
                    f"obs_keys: LowDimEncoder expects 1-D or 2-D (flattened per frame) observations, got {key!r} "
                    f"with shape {tuple(shape)}{hint}"
                )
        self.keys = list(obs_shapes)
        self.out_dim = n_obs_steps * sum(math.prod(int(n) for n in shape) for shape in obs_shapes.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        # each key (B, To, *shape) -> (B, To, numel); concatenated per frame -> (B, To * sum numel)
        return torch.cat([obs[key].flatten(2) for key in self.keys], dim=-1).flatten(1)
