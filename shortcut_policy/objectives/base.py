"""The objective plug-in: how a denoiser is trained (``loss``) and how it acts (``sample``).

Any network that follows :class:`Denoiser` can be trained by any objective; the policy only calls
``objective.sample`` and never needs to know which objective trained it.
"""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import torch

from .noise import draw_noise


class Denoiser(Protocol):
    """A conditional network over samples ``x`` (B, *shape).

    ``encode`` turns the raw conditioning input (normalized observations, class labels, ...) into
    features once per batch; ``forward`` is called once per network evaluation (NFE), at the time
    ``t`` (B,) and the real-valued step size ``d`` (B,), both in [0, 1]: the output is a velocity
    over the interval [t, t + d] (d = 0: the instantaneous velocity; objectives that do not use the
    step pass 0).
    """

    def encode(self, cond_input: Any) -> torch.Tensor: ...  # -> (B, C)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...

    # Optional, for classifier-free guidance and condition dropout (class-conditional denoisers such as
    # the DiT): the encoded "no condition" features, shaped like ``cond``.
    # def null_cond(self, cond: torch.Tensor) -> torch.Tensor: ...


class Objective(Protocol):
    name: str

    def loss(
        self,
        net: Denoiser,
        x1: torch.Tensor,
        cond_input: Any,
        target_net: Denoiser | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Scalar training loss on clean samples ``x1`` (B, *shape) and metrics for logging; ``metrics["loss"]``
        is the loss progress bars and validation report (MeanFlow's: its squared error before its adaptive
        weights, which hold the weighted loss near 1)."""
        ...

    def sample(
        self,
        net: Denoiser,
        cond: torch.Tensor,
        shape: tuple[int, ...],
        steps: int,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Draw samples (B, *shape) with ``steps`` network evaluations, from encoded ``cond``."""
        ...

    def validate_steps(self, steps: int) -> None:
        """Raise ValueError naming ``steps`` if this objective cannot sample with that many NFE."""
        ...

    def valid_steps(self) -> list[int]:
        """The step budgets this objective can sample with (for evaluation sweeps and messages)."""
        ...


def is_step_count(steps: Any) -> bool:
    """An integer number of sampling steps: Python's or NumPy's (a loop over ``2 ** np.arange(8)``), not a bool."""
    return isinstance(steps, numbers.Integral) and not isinstance(steps, bool)


MAX_SAMPLING_STEPS = 1024  # a sanity bound for the Euler samplers that take any number of steps
SWEEP_STEPS = [2**k for k in range(8)]  # the budgets their evaluations sweep by default: 1 .. 128


def validate_any_steps(steps: Any, objective: str) -> None:
    """The check of an Euler-sampled ``objective`` that may take any number of steps up to the bound."""
    if not is_step_count(steps) or not 1 <= steps <= MAX_SAMPLING_STEPS:
        raise ValueError(f"steps: expected an integer from 1 to {MAX_SAMPLING_STEPS} ({objective}), got {steps!r}")


@contextlib.contextmanager
def eval_mode(net: Any) -> Iterator[None]:
    """Run ``net`` without dropout (eval mode) inside the block, then give every module back its own mode.

    Self-consistency targets are built this way, as the paper's code builds them (``train=False``):
    dropout in the two half steps would make the target noise, not the model's own two-step answer."""
    modules = list(net.modules()) if isinstance(net, torch.nn.Module) else []
    modes = [m.training for m in modules]
    for m in modules:
        m.training = False
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.training = mode


def null_cond_of(net: Denoiser, cond: torch.Tensor, option: str) -> torch.Tensor:
    """``net.null_cond(cond)``, or a clear error naming the objective ``option`` that needs it."""
    null_cond = getattr(net, "null_cond", None)
    if null_cond is None:
        raise ValueError(
            f"objective.{option}: needs a denoiser with a null condition (null_cond), such as the class-conditional "
            f"DiT; got {type(net).__name__}"
        )
    return null_cond(cond)


def drop_cond(net: Denoiser, cond: torch.Tensor, prob: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each row of ``cond`` (B, C) by the null condition with probability ``prob`` (label dropout)."""
    drop = torch.rand(cond.shape[0], generator=generator).to(cond.device) < prob
    return torch.where(drop[:, None], null_cond_of(net, cond, "cond_drop_prob"), cond)


class Guided:
    """A denoiser under classifier-free guidance: v = v_null + scale * (v_cond - v_null).

    Both halves run as one doubled batch, so one guided evaluation is one (twice as wide) NFE.
    """

    def __init__(self, net: Denoiser, scale: float) -> None:
        self.net = net
        self.scale = scale

    def __call__(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        null = null_cond_of(self.net, cond, "cfg_scale")
        both = self.net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([d, d]), torch.cat([cond, null]))
        v_cond, v_null = both.chunk(2)
        return v_null + self.scale * (v_cond - v_null)


@dataclass
class GuidanceConfig:
    """Condition dropout and classifier-free guidance options, shared by the Euler-sampled objectives.

    All off by default; they need a denoiser with ``null_cond`` (the class-conditional DiT).
    """

    cond_drop_prob: float = 0.0  # label dropout on the flow rows (image setting: 0.1)
    cfg_scale: float = 1.0  # classifier-free guidance weight; 1 = none
    cfg_min_steps: int = 128  # guide sampling only with >= this many steps (the paper's many-step setting)

    def __post_init__(self) -> None:
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"objective.cond_drop_prob: expected a value in [0, 1), got {self.cond_drop_prob}")
        if not 0 <= self.cfg_scale < math.inf:
            raise ValueError(f"objective.cfg_scale: expected >= 0 (1 = no guidance), got {self.cfg_scale}")
        if self.cfg_min_steps < 1:
            raise ValueError(f"objective.cfg_min_steps: expected >= 1, got {self.cfg_min_steps}")

    def guided_at(self, steps: int) -> bool:
        """Whether sampling with ``steps`` steps applies guidance."""
        return self.cfg_scale != 1.0 and steps >= self.cfg_min_steps

    def sampling_net(self, net: Denoiser, steps: int) -> Denoiser:
        """``net``, guided when sampling with ``steps`` steps calls for it."""
        return Guided(net, self.cfg_scale) if self.guided_at(steps) else net


def broadcast_to(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-row tensor (B,) so that it broadcasts against x (B, *shape)."""
    return v.reshape(v.shape[0], *([1] * (x.ndim - 1)))


class ChunkPredicting:
    """A network that outputs the clean chunk x̂ (its estimate of where the path ends, at t = 1), seen as one
    that outputs the velocity toward it: u = (x̂ - x_t) / max(1 - t, gap).

    Any velocity can be written so (x̂ = x_t + (1 - t) u), so nothing is lost; what changes is what the
    network has to learn. A step to the end of the path (d = 1 - t) lands on x̂ itself, so a one-step
    sample is the network's output and not x0 + u(x0), whose noise u must cancel to the last digit. The
    gap bounds the division near the data, where the path's velocity is still finite."""

    def __init__(self, net: Denoiser, gap: float) -> None:
        self.net = net
        self.gap = gap

    def __call__(self, x: torch.Tensor, t: torch.Tensor, d: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return (self.net(x, t, d, cond) - x) / broadcast_to((1.0 - t).clamp_min(self.gap), x)


@torch.no_grad()
def euler_sample(
    net: Denoiser,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    d: float,
    clip: bool,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Integrate x' = net(x, t, d) from noise at t = 0 to data at t = 1 in ``steps`` Euler steps of
    1/steps; ``d`` is the step size the network is told (1/steps, or 0 where it ignores the step).
    ``noise`` (B, *shape): the start, where the caller has one; else it is drawn."""
    b = cond.shape[0]
    x = draw_noise((b, *shape), generator, cond.device) if noise is None else noise
    step_size = torch.full((b,), float(d), dtype=x.dtype, device=cond.device)
    for i in range(steps):
        t = torch.full((b,), i / steps, dtype=x.dtype, device=cond.device)
        x = x + net(x, t, step_size, cond) / steps
    return x.clamp(-1.0, 1.0) if clip else x
