"""Plain flow matching (rectified flow): the naive few-step baseline.

Same path and convention as the shortcut objective (x_t = (1 - t) x0 + t x1, noise at t = 0), every
row a flow row, and the step size ignored: the network is always told the finest level. Sampling
is k Euler steps of size 1/k, which is exact only as k grows; the paper shows it collapsing at k = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .base import Denoiser, GuidanceConfig, broadcast_to, drop_cond, euler_sample, is_step_count

MAX_SAMPLING_STEPS = 1024  # a sanity bound for the Euler sampler


@dataclass
class FlowMatchingConfig(GuidanceConfig):
    clip_sample: bool = True  # clamp the final sample to the normalized data range [-1, 1]


class FlowMatchingObjective:
    name = "flow_matching"
    n_levels = 1  # the step size is not an input: level 0 always

    def __init__(self, config: FlowMatchingConfig | None = None) -> None:
        self.config = config or FlowMatchingConfig()

    def loss(
        self,
        net: Denoiser,
        x1: torch.Tensor,
        cond_input: Any,
        target_net: Denoiser | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        b = x1.shape[0]
        x0 = torch.randn(x1.shape, generator=generator).to(x1.device)
        t = torch.rand(b, generator=generator).to(x1.device)
        x_t = (1 - broadcast_to(t, x1)) * x0 + broadcast_to(t, x1) * x1
        cond = net.encode(cond_input)
        if self.config.cond_drop_prob > 0:
            cond = drop_cond(net, cond, self.config.cond_drop_prob, generator)
        v_pred = net(x_t, t, torch.zeros(b, dtype=torch.long, device=x1.device), cond)
        loss = F.mse_loss(v_pred, x1 - x0)
        return loss, {"loss": loss.item(), "loss_flow": loss.item()}

    def valid_steps(self) -> list[int]:
        return [2**k for k in range(8)]  # the budgets evaluations sweep; any k in 1..1024 samples

    def validate_steps(self, steps: int) -> None:
        if not is_step_count(steps) or not 1 <= steps <= MAX_SAMPLING_STEPS:
            raise ValueError(f"steps: expected an integer from 1 to {MAX_SAMPLING_STEPS} (flow_matching), got {steps!r}")

    @torch.no_grad()
    def sample(
        self,
        net: Denoiser,
        cond: torch.Tensor,
        shape: tuple[int, ...],
        steps: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        self.validate_steps(steps)
        net = self.config.sampling_net(net, steps)
        return euler_sample(net, cond, shape, steps, 0, self.config.clip_sample, generator)
