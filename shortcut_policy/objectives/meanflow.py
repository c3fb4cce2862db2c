"""MeanFlow (Geng, Deng, Bai, Kolter, He 2025, arXiv 2505.13447): one-step generation by learning the
average velocity over an interval, through an identity that needs no second network and no schedule
of step sizes.

Convention: this library's, not the paper's. The paper puts noise at t = 1 and integrates toward
t = 0; here noise is at t = 0 and data at t = 1 (as the shortcut objective and the sampler):
    x_t = (1 - t) x0 + t x1,   v = x1 - x0,   t_here = 1 - t_paper,   d = t_paper - r_paper.
The network u(x_t, t, d) is the average velocity over [t, t + d] (the paper's u(z_t, r, t) with
its (t, t - r) conditioning), so one step of size d is x_{t+d} = x_t + d u(x_t, t, d), and d = 0
is the instantaneous velocity: the interval's rows are flow matching's rows when d = 0.

The MeanFlow identity (paper eq. 6), in this convention. With the end e = t + d fixed,
    d u(x_t, t, d) = integral_t^e v(x_s, s) ds;  differentiating in t:  u = v + d (du/dt),
where du/dt = (d/dt) u(x_t, t, e - t) = (du/dx) v + du/dt - du/dd is the total derivative along
the path: one forward-mode pass (a Jacobian-vector product) with tangents (v, 1, -1) for (x, t, d).
The paper's training target is u_tgt = v + d sg(du/dt) with the conditional velocity v = x1 - x0,
the loss ||u - sg(u_tgt)||^2 (paper eq. 9-10), no gradient through the target.

Paper defaults, kept here: (t, r) drawn as two logit-normal(-0.4, 1) samples ordered so that the
interval runs toward the data; a quarter of the rows with r != t (d > 0), the rest d = 0, whose time is
the later (noisier) of the two draws as in the paper's code; adaptive loss weight
w = 1 / (||err||^2 + c)^p with p = 1, c = 1e-3, on the per-row sum of squares. The later of two draws
reaches the path's last tenth (t > 0.9 here) in about 0.1% of the rows, where a many-step sampler
makes its last refinements: ``flow_time`` draws the d = 0 rows' time otherwise. ``corner_fraction``
puts a share of the interval rows at the one-step map, (t, d) = (0, 1), and ``corner_steps`` gives those
rows the network's own k-step sample from the same noise as their target instead of the identity's.
``endpoint_fraction`` puts a share at intervals that end at the data, t uniform and d = 1 - t: the family
the one-step map belongs to. On that family the identity's target reads u + dE/dt, E = x_t + (1 - t) u the
interval's end, so the loss pulls each row's end toward the end seen a moment later along the path; it is
anchored where t reaches 1 (E = x there), and only a family that spans the whole path carries that anchor
down to t = 0. Corner rows alone are one point of that family, with no rows between them and the anchor.

``target_pass=difference`` takes du/dt as a central difference instead, two plain forwards. Only the
interval rows (d > 0) need the forward-mode pass (d sg(du/dt) is 0 at d = 0). The target
is detached, so that pass runs without recording a graph; the prediction u then comes from one plain
forward over the whole batch, whose backward is the only one taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.func import jvp
from torch.nn.attention import SDPBackend, sdpa_kernel

from .base import SWEEP_STEPS, ChunkPredicting, Denoiser, broadcast_to, euler_sample, eval_mode, validate_any_steps

TIME_SAMPLERS = ("logit_normal", "uniform")
TARGET_PASSES = ("jvp", "difference")
FLOW_TIMES = ("later_of_two", "one_draw", "uniform")
PREDICTIONS = ("velocity", "chunk")


@dataclass
class MeanFlowConfig:
    """Options of the MeanFlow objective, the paper's ImageNet defaults (its Table 1 and 4)."""

    interval_fraction: float = 0.25  # share of each batch with r != t (an interval d > 0); the paper's 25%
    time_sampler: str = "logit_normal"  # "logit_normal" (the paper's) or "uniform", for both ends of the interval
    time_mean: float = -0.4  # logit-normal mean, over the paper's time (noise at 1): one draw leans toward the data
    time_std: float = 1.0  # logit-normal standard deviation
    adaptive_p: float = 1.0  # loss weight 1 / (||err||^2 + c)^p; 0 = plain squared error
    adaptive_c: float = 1e-3
    # the d = 0 rows' time: the later (noisier) of the two draws, as the paper's code draws it, which leaves the
    # path's last tenth almost untrained; one draw of time_sampler; or uniform over the whole path
    flow_time: str = "later_of_two"
    corner_fraction: float = 0.0  # share of the interval rows set to the one-step map itself: t = 0, d = 1
    # the corner rows' target: 0, the MeanFlow identity's (as every interval row); k >= 2, the network's own
    # k-step sample from the same noise, so the one-step map learns where k steps take that noise
    corner_steps: int = 0
    # share of the interval rows (after the corner rows) that end at the data: t uniform in [0, 1), d = 1 - t
    endpoint_fraction: float = 0.0
    # how du/dt is taken: forward-mode (exact), or a central difference along the path, two plain forwards
    # without a graph (cheaper where forward mode is slow; its error is the step's square)
    target_pass: str = "jvp"
    difference_step: float = 1e-3  # target_pass=difference: the step s along (x, t, d) += s (v, 1, -1)
    prediction: str = "velocity"  # the network's output: the average velocity u, or the chunk x̂ (ChunkPredicting)
    chunk_gap: float = 0.05  # prediction=chunk: u = (x̂ - x_t) / max(1 - t, chunk_gap)
    clip_sample: bool = True  # clamp the final sample to the normalized data range [-1, 1]

    def __post_init__(self) -> None:
        if not 0.0 <= self.interval_fraction <= 1.0:
            raise ValueError(f"objective.interval_fraction: expected a value in [0, 1], got {self.interval_fraction}")
        if self.time_sampler not in TIME_SAMPLERS:
            raise ValueError(f"objective.time_sampler: expected one of {list(TIME_SAMPLERS)}, got {self.time_sampler!r}")
        if not -10.0 <= self.time_mean <= 10.0:
            raise ValueError(f"objective.time_mean: expected a logit in [-10, 10], got {self.time_mean}")
        if not 0.0 < self.time_std <= 10.0:
            raise ValueError(f"objective.time_std: expected a value in (0, 10], got {self.time_std}")
        if not 0.0 <= self.adaptive_p <= 2.0:
            raise ValueError(f"objective.adaptive_p: expected a value in [0, 2] (1: the paper's), got {self.adaptive_p}")
        if not 0.0 < self.adaptive_c < 1e6:
            raise ValueError(f"objective.adaptive_c: expected a small positive number (the paper's 1e-3), got {self.adaptive_c}")
        if not 0.0 <= self.corner_fraction <= 1.0:
            raise ValueError(f"objective.corner_fraction: expected a value in [0, 1], got {self.corner_fraction}")
        if self.corner_steps != 0 and not 2 <= self.corner_steps <= 128:
            raise ValueError(f"objective.corner_steps: expected 0 (the MeanFlow target) or a step count in [2, 128], got {self.corner_steps}")
        if self.corner_steps and not self.corner_fraction:
            raise ValueError(f"objective.corner_steps: {self.corner_steps} steps' target is for the corner rows, and "
                             "objective.corner_fraction is 0; set it above 0 or corner_steps to 0")
        if not 0.0 <= self.endpoint_fraction <= 1.0 - self.corner_fraction:
            raise ValueError(f"objective.endpoint_fraction: expected a value in [0, 1 - corner_fraction] = "
                             f"[0, {1.0 - self.corner_fraction:g}], got {self.endpoint_fraction}")
        if self.flow_time not in FLOW_TIMES:
            raise ValueError(f"objective.flow_time: expected one of {list(FLOW_TIMES)}, got {self.flow_time!r}")
        if self.target_pass not in TARGET_PASSES:
            raise ValueError(f"objective.target_pass: expected one of {list(TARGET_PASSES)}, got {self.target_pass!r}")
        if not 1e-5 <= self.difference_step <= 2e-3:  # the embedding's sinusoids reach 100 rad per unit of t
            raise ValueError(f"objective.difference_step: expected a step in [1e-05, 0.002] (float32 rounding below, "
                             f"the time embedding's curvature above), got {self.difference_step}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"objective.prediction: expected one of {list(PREDICTIONS)}, got {self.prediction!r}")
        if not 0.0 < self.chunk_gap <= 1.0:
            raise ValueError(f"objective.chunk_gap: expected a value in (0, 1], got {self.chunk_gap}")


class MeanFlowObjective:
    """Loss and sampler of MeanFlow; acts with any number of steps, each told its step size 1/steps."""

    name = "meanflow"

    def __init__(self, config: MeanFlowConfig | None = None) -> None:
        self.config = config or MeanFlowConfig()

    # ----------------------------------------------------------------- schedule
    def split(self, batch_size: int) -> int:
        """Number of interval rows (d > 0) in a batch; they come first, the d = 0 rows after. At least one
        when the fraction is above 0, so a small batch still trains the intervals one step samples."""
        n = int(round(self.config.interval_fraction * batch_size))
        return max(n, 1) if self.config.interval_fraction > 0 else n

    def corners(self, n_interval: int) -> int:
        """Number of corner rows, (t, d) = (0, 1), among ``n_interval`` interval rows; they come first."""
        return int(round(self.config.corner_fraction * n_interval))

    def endpoints(self, n_interval: int) -> int:
        """Number of rows ending at the data (t uniform, d = 1 - t) among ``n_interval``; after the corners."""
        return min(int(round(self.config.endpoint_fraction * n_interval)), n_interval - self.corners(n_interval))

    def _paper_times(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """n draws of the paper's time (noise at 1) from the configured distribution."""
        if self.config.time_sampler == "uniform":
            return torch.rand(n, generator=generator)
        return torch.sigmoid(self.config.time_mean + self.config.time_std * torch.randn(n, generator=generator))

    def sample_times(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(t, d), each (B,), in this library's convention: the first ``split(B)`` rows have d = t_p - r_p
        > 0 from two ordered draws (t_p = max, r_p = min, in the paper's time), the rest d = 0 at the
        time ``flow_time`` says; the first ``corner_fraction`` of the interval rows are the one-step map's
        (t, d) = (0, 1), which two draws almost never reach, and the next ``endpoint_fraction`` end at the
        data (t uniform, d = 1 - t)."""
        a, b = self._paper_times(batch_size, generator), self._paper_times(batch_size, generator)
        t_paper, r_paper = torch.maximum(a, b), torch.minimum(a, b)
        n_interval = self.split(batch_size)
        if self.config.flow_time == "one_draw":
            t_paper[n_interval:] = a[n_interval:]
        elif self.config.flow_time == "uniform":
            t_paper[n_interval:] = torch.rand(batch_size - n_interval, generator=generator)
        r_paper[n_interval:] = t_paper[n_interval:]  # the flow rows: r = t
        n_corner = self.corners(n_interval)
        t_paper[:n_corner], r_paper[:n_corner] = 1.0, 0.0  # from the noise to the data in one interval
        n_end = n_corner + self.endpoints(n_interval)
        if n_end > n_corner:  # from a uniform time to the data: r_p = 0, t_p in (0, 1]
            t_paper[n_corner:n_end] = 1.0 - torch.rand(n_end - n_corner, generator=generator)
            r_paper[n_corner:n_end] = 0.0
        return (1.0 - t_paper).to(device), (t_paper - r_paper).to(device)

    def velocity(self, net: Denoiser) -> Denoiser:
        """``net`` as the average velocity u(x_t, t, d) that the loss, the target and the sampler read."""
        return ChunkPredicting(net, self.config.chunk_gap) if self.config.prediction == "chunk" else net

    @torch.no_grad()
    def interval_target(
        self, net: Denoiser, x_t: torch.Tensor, t: torch.Tensor, d: torch.Tensor, v: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        """The target v + d sg(du/dt) at x_t (B, *shape), without a graph: du/dt is the total derivative
        of u(x_t, t, d) along the path with the end t + d fixed, the Jacobian-vector product of u with
        the tangents (v, 1, -1) for (x, t, d). Forward-mode derivatives are unaffected by no_grad. The
        pass runs without dropout, as shortcut's targets do: the target is the network's own derivative."""

        u_of = self.velocity(net)

        def average_velocity(x: torch.Tensor, t_: torch.Tensor, d_: torch.Tensor) -> torch.Tensor:
            return u_of(x, t_, d_, cond)

        if self.config.target_pass == "difference":  # du/dt ~ (u(+s) - u(-s)) / 2s along (v, 1, -1)
            h = self.config.difference_step
            with eval_mode(net):
                ahead = average_velocity(x_t + h * v, t + h, d - h)
                behind = average_velocity(x_t - h * v, t - h, d + h)
            return v + broadcast_to(d, x_t) * (ahead - behind) / (2 * h)  # u_tgt = v + d sg(du/dt)

        ones = torch.ones_like(t)
        # the fused attention kernels, and nn.Transformer*'s inference fast path (eval mode without
        # gradients, as here), have no forward-mode derivative: the math kernel does
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with sdpa_kernel(SDPBackend.MATH), eval_mode(net):
                _, du_dt = jvp(average_velocity, (x_t, t, d), (v, ones, -ones))
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        return v + broadcast_to(d, x_t) * du_dt  # u_tgt = v + d sg(du/dt)

    @torch.no_grad()
    def corner_target(self, net: Denoiser, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The network's own ``corner_steps``-step sample from the noise x0 (B, *shape), as the sampler would
        draw it (clipped where it clips), without a graph and without dropout: a self-distillation of the
        many-step map into the one-step map, noise by noise, so the modes the many steps reach are kept."""
        steps = self.config.corner_steps
        with eval_mode(net):
            return euler_sample(self.velocity(net), cond, tuple(x0.shape[1:]), steps, 1.0 / steps, self.config.clip_sample, noise=x0)

    # -------------------------------------------------------------------- train
    def loss(
        self,
        net: Denoiser,
        x1: torch.Tensor,
        cond_input: Any,
        target_net: Denoiser | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        b, device = x1.shape[0], x1.device
        x0 = torch.randn(x1.shape, generator=generator).to(device)
        t, d = self.sample_times(b, generator, device)
        x_t = (1 - broadcast_to(t, x1)) * x0 + broadcast_to(t, x1) * x1
        v = x1 - x0  # the conditional velocity, toward the data
        cond = net.encode(cond_input)
        n = self.split(b)

        target = v.clone()  # d = 0 rows: flow matching's target, the conditional velocity
        k = self.corners(n) if self.config.corner_steps else 0  # corner rows with a k-step target come first
        if k:  # x_t = x0 there (t = 0, d = 1): u(x0, 0, 1) should reach where corner_steps steps reach
            target[:k] = self.corner_target(net, x_t[:k], cond[:k].detach()) - x_t[:k]
        if n > k:  # interval rows: the MeanFlow target from one forward-mode pass
            target[k:n] = self.interval_target(net, x_t[k:n], t[k:n], d[k:n], v[k:n], cond[k:n].detach())
        u = self.velocity(net)(x_t, t, d, cond)  # (B, *shape) one forward over every row, the only graph
        err = (u - target).pow(2).flatten(1).sum(1)  # (B,) per-row sum of squares, as the paper's loss
        weight = 1.0 / (err.detach() + self.config.adaptive_c) ** self.config.adaptive_p  # sg(w)
        loss = (weight * err).mean()
        per_dim = err.detach() / x1[0].numel()
        metrics = {"loss": per_dim.mean().item(), "loss_weighted": loss.item()}
        if n < b:
            metrics["loss_flow"] = per_dim[n:].mean().item()
        if n:
            metrics["loss_interval"] = per_dim[:n].mean().item()
        return loss, metrics

    # ---------------------------------------------------------------------- act
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
        """``steps`` steps of size d = 1/steps from noise (t = 0): x_{t+d} = x_t + d u(x_t, t, d)."""
        self.validate_steps(steps)
        return euler_sample(self.velocity(net), cond, shape, steps, 1.0 / steps, self.config.clip_sample, generator)
