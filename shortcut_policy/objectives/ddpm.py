"""Diffusion Policy's objective: epsilon prediction on a discrete DDPM chain, sampled by DDPM or DDIM.

Training follows Diffusion Policy: T = 100 timesteps, the ``squaredcos_cap_v2`` (cosine) schedule,
epsilon prediction, predicted samples clipped to [-1, 1]. Acting with ``steps == T`` runs ancestral
DDPM sampling (DP's default); any smaller ``steps`` runs deterministic DDIM (eta = 0) over
``steps`` timesteps, spaced as diffusers spaces them (``timestep_spacing``, below). The update rules
are written out here and checked against diffusers' schedulers in ``tests/test_objectives_baselines.py``.

Timestep spacing matters at few steps. "leading" (diffusers' default, and what Diffusion Policy's
DDIM config gets) spaces k = (steps-1 .. 0) * (T // steps): one step runs only k = 0, the nearly clean
end, so the sample is the starting noise, barely moved; two steps start at k = 50. "trailing"
(Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed") starts every
budget at k = T - 1, the noisy end, where sampling from noise belongs, and is our default. At T
steps both are DDPM's full chain. One step stays poor either way with epsilon prediction: at k = T - 1
the clean estimate divides the predicted noise's error by sqrt(abar) = 5e-4.

The denoiser sees ``t = 1 - k / T`` for timestep k, so that, as for the flow objectives, t near 0
is the noisy end; the step size d is always 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .base import Denoiser, broadcast_to, is_step_count
from .noise import draw_noise

SPACINGS = ("leading", "trailing")
MAX_BETA = 0.999  # the cosine schedule's cap on beta (diffusers' default for squaredcos_cap_v2)
COSINE_OFFSET = 0.008  # s in Nichol & Dhariwal's cosine schedule


def cosine_betas(num_timesteps: int) -> torch.Tensor:
    """squaredcos_cap_v2: beta_i = 1 - abar((i+1)/T) / abar(i/T), abar(u) = cos((u + s)/(1 + s) * pi/2)^2."""

    def alpha_bar(u: float) -> float:
        return math.cos((u + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_timesteps) / alpha_bar(i / num_timesteps), MAX_BETA)
        for i in range(num_timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


@dataclass
class DDPMConfig:
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    clip_sample: bool = True  # clip the predicted clean sample to [-1, 1] at every step
    # DDIM timesteps: "trailing" (from the noisy end) or "leading" (diffusers' default, and Diffusion
    # Policy's); trailing starts few-step sampling from pure noise, where leading starts it part-way
    # (the two compared: docs/results/push_t_comparison.md).
    timestep_spacing: str = "trailing"

    def __post_init__(self) -> None:
        if self.timestep_spacing not in SPACINGS:
            raise ValueError(f"objective.timestep_spacing: expected one of {list(SPACINGS)}, got {self.timestep_spacing!r}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"objective.num_train_timesteps: expected >= 2, got {self.num_train_timesteps}")
        if self.beta_schedule != "squaredcos_cap_v2":
            raise ValueError(f"objective.beta_schedule: expected 'squaredcos_cap_v2', got {self.beta_schedule!r}")


class DDPMObjective:
    name = "ddpm"

    def __init__(self, config: DDPMConfig | None = None) -> None:
        self.config = config or DDPMConfig()
        self.T = self.config.num_train_timesteps
        self.betas = cosine_betas(self.T)  # (T,) float64
        self.alphas = 1 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, 0)

    def _t_input(self, k: torch.Tensor) -> torch.Tensor:
        return 1.0 - k.float() / self.T

    def loss(
        self,
        net: Denoiser,
        x1: torch.Tensor,
        cond_input: Any,
        target_net: Denoiser | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        b = x1.shape[0]
        eps = torch.randn(x1.shape, generator=generator).to(x1.device)
        k = torch.randint(0, self.T, (b,), generator=generator).to(x1.device)
        abar = broadcast_to(self.alpha_bars.to(x1.device)[k].float(), x1)
        x_k = abar.sqrt() * x1 + (1 - abar).sqrt() * eps
        eps_pred = net(x_k, self._t_input(k), torch.zeros(b, device=x1.device), net.encode(cond_input))
        loss = F.mse_loss(eps_pred, eps)
        return loss, {"loss": loss.item()}

    def valid_steps(self) -> list[int]:
        return [1, 2, 4, 8, 16, self.T]

    def validate_steps(self, steps: int) -> None:
        if not is_step_count(steps) or not 1 <= steps <= self.T:
            raise ValueError(
                f"steps: expected an integer from 1 to {self.T} (ddpm: {self.T} = DDPM, fewer = DDIM), got {steps!r}"
            )

    def ddim_timesteps(self, steps: int) -> list[int]:
        """Descending DDIM timesteps, as diffusers' DDIMScheduler.set_timesteps gives them.

        leading: k = (steps-1 .. 0) * (T // steps); trailing: round(T - i * T / steps) - 1 for i = 0 .. steps-1.
        """
        if self.config.timestep_spacing == "trailing":
            # diffusers' grid, np.arange(T, 0, -T / steps), has one entry too many at some budgets (29 of
            # 100: a float end point just above 0 gives an extra k = -1); its first ``steps`` entries
            grid = np.round(np.arange(self.T, 0, -self.T / steps))[:steps]
            return (grid.astype(np.int64) - 1).tolist()
        ratio = self.T // steps
        return [i * ratio for i in reversed(range(steps))]

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
        steps = int(steps)  # a NumPy unsigned integer would wrap below zero in k - T // steps
        b, device = cond.shape[0], cond.device
        x = draw_noise((b, *shape), generator, device)
        d = torch.zeros(b, device=device)
        ddpm = steps == self.T
        timesteps = list(reversed(range(self.T))) if ddpm else self.ddim_timesteps(steps)
        for i, k in enumerate(timesteps):
            eps = net(x, torch.full((b,), 1.0 - k / self.T, device=device), d, cond)
            # DDIM steps to k - T // steps, as diffusers does (with trailing spacing that can differ by
            # one from the next timestep); the last step always ends at the clean end (-1), where
            # diffusers stops at k = 0 for some budgets (6 of 100 steps, trailing) and leaves noise
            last = i == len(timesteps) - 1
            prev = k - 1 if ddpm else (-1 if last else max(k - self.T // steps, -1))
            x = self.step(x, eps, k, prev, stochastic=ddpm, generator=generator)
        return x

    def step(
        self, x: torch.Tensor, eps: torch.Tensor, k: int, prev: int, stochastic: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One reverse step from timestep k to ``prev`` (-1: the clean end): DDPM posterior or DDIM (eta=0)."""
        abar = self.alpha_bars[k].item()
        abar_prev = self.alpha_bars[prev].item() if prev >= 0 else 1.0
        x0 = (x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        if self.config.clip_sample:
            x0 = x0.clamp(-1.0, 1.0)
        if not stochastic:  # DDIM, eta = 0
            return math.sqrt(abar_prev) * x0 + math.sqrt(1 - abar_prev) * eps
        beta = 1 - abar / abar_prev  # the beta of this (possibly strided) step
        mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0 + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x
        if prev < 0:
            return mean
        variance = max((1 - abar_prev) / (1 - abar) * beta, 1e-20)
        noise = draw_noise(tuple(x.shape), generator, x.device)
        return mean + math.sqrt(variance) * noise
