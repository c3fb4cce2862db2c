"""Plain flow matching (rectified flow): the naive few-step baseline.

Same path and convention as the shortcut objective (x_t = (1 - t) x0 + t x1, noise at t = 0), every
row a flow row, and the step size ignored: the network is always told d = 0. Sampling
is k Euler steps of size 1/k, which is exact only as k grows; the paper shows it collapsing at k = 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .base import SWEEP_STEPS, Denoiser, GuidanceConfig, broadcast_to, drop_cond, euler_sample, validate_any_steps


@dataclass
class FlowMatchingConfig(GuidanceConfig):
    clip_sample: bool = True  # clamp the final sample to the normalized data range [-1, 1]


class FlowMatchingObjective:
    name = "flow_matching"

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
        v_pred = net(x_t, t, torch.zeros(b, device=x1.device), cond)
        loss = F.mse_loss(v_pred, x1 - x0)
        return loss, {"loss": loss.item(), "loss_flow": loss.item()}

    def valid_steps(self) -> list[int]:
        return list(SWEEP_STEPS)  # the budgets evaluations sweep; any k up to MAX_SAMPLING_STEPS samples

    def validate_steps(self, steps: int) -> None:
        validate_any_steps(steps, self.name)

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
        return euler_sample(net, cond, shape, steps, 0.0, self.config.clip_sample, generator)
