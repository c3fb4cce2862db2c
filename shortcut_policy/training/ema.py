"""Exponential moving average of a network's weights: the weights the policy acts with."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..utils.checks import check_ema


class EMA:
    """EMA with Diffusion Policy's warm-up: decay = 1 - (1 + step)^-power, capped at ``max_decay``.

    Early in training the average follows the network closely (decay 0 at step 0, ~0.994 at step
    1000), so short runs still act with averaged weights that are not stuck at initialization.
    """

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999) -> None:
        check_ema(power, max_decay)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.power = power
        self.max_decay = max_decay
        self.step = 0

    def decay(self) -> float:
        return min(self.max_decay, max(0.0, 1.0 - (1.0 + self.step) ** -self.power))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.decay()
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buffer, buffer in zip(self.model.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
        self.step += 1
