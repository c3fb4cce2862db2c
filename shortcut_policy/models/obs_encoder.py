"""Observation encoders: normalized observation history -> one conditioning vector per sample."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn


class LowDimEncoder(nn.Module):
    """Concatenates low-dimensional observation keys over the history window, as Diffusion Policy does.

    Input ``obs[key]``: (B, n_obs_steps, dim_key); output (B, n_obs_steps * sum(dim_key)), frame-major
    (all keys of frame 0, then frame 1, ...), so a backbone can view it as one token per frame.
    """

    def __init__(self, obs_shapes: Mapping[str, Sequence[int]], n_obs_steps: int) -> None:
        super().__init__()
        for key, shape in obs_shapes.items():
            if len(shape) != 1:
                raise ValueError(
                    f"obs_keys: LowDimEncoder expects 1-D observations, got {key!r} with shape {tuple(shape)}"
                )
        self.keys = list(obs_shapes)
        self.out_dim = n_obs_steps * sum(int(shape[0]) for shape in obs_shapes.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([obs[key] for key in self.keys], dim=-1).flatten(1)
