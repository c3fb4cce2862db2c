"""The shortcut objective (Frans, Hafner, Levine, Abbeel, ICLR 2025).

Convention (also used by the sampler):
    x_t = (1 - t) * x0 + t * x1,   x0 ~ N(0, I) is noise at t = 0, x1 is data at t = 1.
    The network s(x_t, t, d) predicts the average velocity over a step of size d, so one step is
    x_{t+d} = x_t + d * s(x_t, t, d).

Step sizes are the levels d = 2^-level, level = 0 .. L with L = log2(M): d = 1 (one step) down to
d = 1/M (the finest). The network is told d itself (a real number), so the levels are the special
case of the denoisers' real-valued step input that this objective trains. Each batch has two kinds
of rows:

* flow rows (fraction 1 - ``sc_fraction``): the flow-matching target v = x1 - x0 at the finest
  level d = 1/M, with t ~ U[0, 1). We train the finest level (not d = 0) on flow so that sampling
  with M steps queries exactly a level that was trained, and self-consistency at d = 2/M bootstraps
  from it.
* self-consistency rows (fraction ``sc_fraction``): levels 0 .. L-1 (d = 1 .. 2/M), with t on the
  grid of multiples of d such that t + d <= 1. The target is the mean of two half steps made without
  gradient by the target network: the trained network itself by default (``sc_target="online"``),
  or its EMA (``sc_target="ema"``, the paper's choice):
      s1 = s(x_t, t, d/2);  x' = x_t + (d/2) s1;  s2 = s(x', t + d/2, d/2);  target = (s1 + s2) / 2.

Why online targets by default: level 0 (one step) bootstraps from level 1, which bootstraps from
level 2, ... down to the flow-trained level L = 7, and an EMA target adds its lag at every hop; with
EMA targets the one-step level lagged far behind the many-step one (docs/results/sc_target.md).
The EMA remains the network the policy acts with. With camera observations an EMA target encodes
the images itself, in eval mode: it sees the centre crop while the trained prediction sees a random one.

Level allocation: every self-consistency row is used and levels are dealt round-robin from a random
offset, so within a batch the level counts differ by at most one and, over consecutive batches,
every level is trained for any batch size (the paper's code drops the last eighth of a batch and,
at batch 32, puts every self-consistency row on one level: its issues #10 and #11).

Class-conditional options of the paper's image setting (all off by default; the image configs turn
them on, and they need a denoiser with ``null_cond``, such as the DiT):

* ``cond_drop_prob``: label dropout on the flow rows only, so the finest level also learns the
  unconditional velocity that guidance needs.
* ``cfg_target``: the self-consistency rows of the finest bootstrap level (d = 2/M) build their two
  half steps with the guided velocity ``v_null + cfg_scale (v_cond - v_null)``; every coarser level
  bootstraps from them, so few-step sampling is guided without extra evaluations.
* ``cfg_min_steps``: guidance at sampling only with at least this many steps (the paper guides only
  its many-step setting, M = 128, whose finest level was trained unguided).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .base import Denoiser, GuidanceConfig, Guided, broadcast_to, drop_cond, euler_sample, eval_mode, is_step_count


@dataclass
class ShortcutConfig(GuidanceConfig):
    """Options of the shortcut objective: M=128 and an eighth of each batch self-consistent, as in the
    paper's released training config (``bootstrap_every: 8``; its text says a quarter), which trains
    faster than a quarter and scored no lower (docs/results/sc_fraction.md); online
    self-consistency targets, which train the one-step level far faster on a CPU budget (see above)."""

    max_steps: int = 128  # M: the finest step is d = 1/M
    sc_fraction: float = 0.125  # share of each batch given to self-consistency rows
    sc_target: str = "online"  # "online": targets from the trained network; "ema": from its EMA (paper)
    clip_sample: bool = True  # clamp the final sample to the normalized data range [-1, 1]
    cfg_target: bool = False  # fold guidance into the finest-level self-consistency targets

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_steps < 1 or self.max_steps & (self.max_steps - 1):
            raise ValueError(f"objective.max_steps: expected a power of two >= 1, got {self.max_steps}")
        if not 0.0 <= self.sc_fraction < 1.0:
            raise ValueError(f"objective.sc_fraction: expected a value in [0, 1), got {self.sc_fraction}")
        if self.sc_target not in ("ema", "online"):
            raise ValueError(f"objective.sc_target: expected 'ema' or 'online', got {self.sc_target!r}")


class ShortcutObjective:
    """Loss and sampler of the shortcut model."""

    name = "shortcut"

    def __init__(self, config: ShortcutConfig | None = None) -> None:
        self.config = config or ShortcutConfig()
        self.finest_level = int(round(math.log2(self.config.max_steps)))  # L = log2(M)

    # ----------------------------------------------------------------- schedule
    def split(self, batch_size: int) -> int:
        """Number of self-consistency rows in a batch (the rest are flow rows)."""
        if self.finest_level == 0:
            return 0  # M = 1: only the one-step level exists, trained by flow
        n_sc = int(round(self.config.sc_fraction * batch_size))
        if self.config.sc_fraction > 0:
            n_sc = max(n_sc, 1)
        return min(n_sc, batch_size - 1)

    def sc_levels(self, n_sc: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Levels (n_sc,) for the self-consistency rows: round-robin over 0..L-1 from a random offset."""
        n_sc_levels = self.finest_level  # levels 0 .. L-1
        if n_sc == 0:  # no self-consistency rows (M = 1 has no level to bootstrap)
            return torch.zeros(0, dtype=torch.long, device=device)
        offset = torch.randint(n_sc_levels, (1,), generator=generator).item()
        return ((torch.arange(n_sc) + offset) % n_sc_levels).to(device)

    def make_targets(
        self,
        x1: torch.Tensor,
        x0: torch.Tensor,
        target_net: Denoiser,
        target_cond: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Build (x_t, t, d, v_target, n_sc) for a batch, d = 2^-level the step sizes (B,); self-consistency
        rows come first."""
        b = x1.shape[0]
        device = x1.device
        n_sc = self.split(b)

        # flow rows: finest level, continuous t
        t_flow = torch.rand(b - n_sc, generator=generator).to(device)
        level_flow = torch.full((b - n_sc,), self.finest_level, dtype=torch.long, device=device)

        # self-consistency rows: t on the grid of multiples of d, t + d <= 1
        level_sc = self.sc_levels(n_sc, generator, device)
        d_sc = torch.pow(2.0, -level_sc.float())
        n_slots = torch.pow(2.0, level_sc.float())  # 1/d grid points j = 0 .. 1/d - 1
        j = torch.floor(torch.rand(n_sc, generator=generator).to(device) * n_slots)
        t_sc = j * d_sc

        t = torch.cat([t_sc, t_flow])
        d = torch.pow(2.0, -torch.cat([level_sc, level_flow]).float())
        x_t = (1 - broadcast_to(t, x1)) * x0 + broadcast_to(t, x1) * x1

        v_target = x1 - x0  # flow target, overwritten below for the self-consistency rows
        if n_sc:
            v_target = v_target.clone()
            v_target[:n_sc] = self.self_consistency_target(target_net, x_t[:n_sc], t_sc, d_sc, target_cond[:n_sc])
            if self.config.cfg_target:  # the finest bootstrap level (d = 2/M) learns the guided velocity
                rows = (level_sc == self.finest_level - 1).nonzero().flatten()
                guided = Guided(target_net, self.config.cfg_scale)
                v_target[rows] = self.self_consistency_target(guided, x_t[rows], t_sc[rows], d_sc[rows], target_cond[rows])
        return x_t, t, d, v_target, n_sc

    @torch.no_grad()
    def self_consistency_target(
        self, net: Denoiser, x_t: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """Mean of two half steps of size d/2 (one level finer): what one step of size d (B,) must equal."""
        half = d / 2
        s1 = net(x_t, t, half, cond)
        x_mid = x_t + broadcast_to(half, x_t) * s1
        s2 = net(x_mid, t + half, half, cond)
        return (s1 + s2) / 2

    # -------------------------------------------------------------------- train
    def loss(
        self,
        net: Denoiser,
        x1: torch.Tensor,
        cond_input: Any,
        target_net: Denoiser | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        if self.config.sc_target == "ema" and target_net is None and self.split(x1.shape[0]):
            raise ValueError("objective.sc_target='ema' needs a target_net (the EMA network); got None")
        if self.config.sc_target == "online" or target_net is None:
            target_net = net
        x0 = torch.randn(x1.shape, generator=generator).to(x1.device)
        cond = net.encode(cond_input)
        with torch.no_grad():
            target_cond = cond.detach() if target_net is net else target_net.encode(cond_input)
        with eval_mode(target_net):  # no dropout in the targets (the EMA network is in eval mode already)
            x_t, t, d, v_target, n_sc = self.make_targets(x1, x0, target_net, target_cond, generator)
        if self.config.cond_drop_prob > 0:  # label dropout on the flow rows only
            cond = torch.cat([cond[:n_sc], drop_cond(net, cond[n_sc:], self.config.cond_drop_prob, generator)])
        v_pred = net(x_t, t, d, cond)
        per_row = F.mse_loss(v_pred, v_target, reduction="none").flatten(1).mean(1)  # (B,)
        loss = per_row.mean()
        metrics = {"loss": loss.item(), "loss_flow": per_row[n_sc:].mean().item()}
        if n_sc:
            metrics["loss_sc"] = per_row[:n_sc].mean().item()
        return loss, metrics

    # ---------------------------------------------------------------------- act
    def valid_steps(self) -> list[int]:
        return [2**k for k in range(self.finest_level + 1)]

    def validate_steps(self, steps: int) -> None:
        if not is_step_count(steps) or steps not in self.valid_steps():
            raise ValueError(
                f"steps: expected a power of two from 1 to {self.config.max_steps} (shortcut objective, "
                f"M={self.config.max_steps}), got {steps!r}"
            )

    @torch.no_grad()
    def sample(
        self,
        net: Denoiser,
        cond: torch.Tensor,
        shape: tuple[int, ...],
        steps: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Euler integration from noise (t=0) to data (t=1) with ``steps`` steps of size d = 1/steps."""
        self.validate_steps(steps)
        net = self.config.sampling_net(net, steps)
        return euler_sample(net, cond, shape, steps, 1.0 / steps, self.config.clip_sample, generator)
