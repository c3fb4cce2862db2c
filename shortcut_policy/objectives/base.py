"""The objective plug-in: how a denoiser is trained (``loss``) and how it acts (``sample``).

Any network that follows :class:`Denoiser` can be trained by any objective; the policy only calls
``objective.sample`` and never needs to know which objective trained it.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Denoiser(Protocol):
    """A conditional network over samples ``x`` (B, *shape).

    ``encode`` turns the raw conditioning input (normalized observations, class labels, ...) into
    features once per batch; ``forward`` is called once per network evaluation (NFE).
    """

    def encode(self, cond_input: Any) -> torch.Tensor: ...  # -> (B, C)

    def __call__(self, x: torch.Tensor, t: torch.Tensor, level: torch.Tensor, cond: torch.Tensor) -> torch.Tensor: ...


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
        """Scalar training loss on clean samples ``x1`` (B, *shape) and metrics for logging."""
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


def broadcast_to(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reshape a per-row tensor (B,) so that it broadcasts against x (B, *shape)."""
    return v.reshape(v.shape[0], *([1] * (x.ndim - 1)))


@torch.no_grad()
def euler_sample(
    net: Denoiser,
    cond: torch.Tensor,
    shape: tuple[int, ...],
    steps: int,
    level: int,
    clip: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Integrate x' = net(x, t, level) from noise at t = 0 to data at t = 1 in ``steps`` Euler steps of 1/steps."""
    b = cond.shape[0]
    x = torch.randn((b, *shape), generator=generator).to(cond.device)
    levels = torch.full((b,), level, dtype=torch.long, device=cond.device)
    for i in range(steps):
        t = torch.full((b,), i / steps, device=cond.device)
        x = x + net(x, t, levels, cond) / steps
    return x.clamp(-1.0, 1.0) if clip else x
