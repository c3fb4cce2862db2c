"""Where the samplers' noise comes from: the policy's CPU generator, or a tape of device buffers.

Every sampler draws its noise through :func:`draw_noise` (the starting sample, DDPM's per-step noise).
Eagerly that is ``torch.randn`` on the CPU generator, moved to the device: the same numbers on every
device, so a rollout's result does not depend on where it ran. A captured CUDA graph cannot copy from
the CPU while it records; under ``noise_from(tape)`` each draw is instead a fixed device buffer of the
tape, and :meth:`NoiseTape.refill` puts into the buffers, before each replay, the very numbers the
eager draws would have made (same generator, same order, same shapes).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

import torch

_TAPE: contextvars.ContextVar["NoiseTape | None"] = contextvars.ContextVar("noise_tape", default=None)


def draw_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device``: drawn on the CPU from ``generator``, or the tape's next buffer."""
    tape = _TAPE.get()
    if tape is not None:
        return tape.next(tuple(shape), device)
    return torch.randn(shape, generator=generator).to(device)


@contextlib.contextmanager
def noise_from(tape: "NoiseTape") -> Iterator["NoiseTape"]:
    token = _TAPE.set(tape)
    try:
        yield tape
    finally:
        _TAPE.reset(token)


class NoiseTape:
    """The noise one sampling call draws, as device buffers at fixed addresses.

    A first pass with a fresh tape learns the draws' shapes (and gives zeros); ``freeze`` lays them out
    in one flat device buffer; from then on the draws hand out views of it in the learned order (a
    pass that draws differently is an error), and ``refill`` fills it with one copy."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []
        self.flat: torch.Tensor | None = None
        self.views: list[torch.Tensor] = []
        self._cursor = 0

    def next(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        if self.flat is None:  # learning
            self.shapes.append(shape)
            return torch.zeros(shape, device=device)
        if self._cursor >= len(self.views) or self.views[self._cursor].shape != shape:
            raise RuntimeError(f"noise tape: draw {self._cursor} asks for {shape}, the tape learned {self.shapes}")
        view = self.views[self._cursor]
        self._cursor += 1
        return view

    def freeze(self, device: torch.device) -> None:
        sizes = [int(torch.Size(s).numel()) for s in self.shapes]
        self.flat = torch.zeros(sum(sizes), device=device)
        self.views = [chunk.view(shape) for chunk, shape in zip(self.flat.split(sizes), self.shapes)]
        self._host = torch.empty(sum(sizes), pin_memory=self.flat.is_cuda)

    def rewind(self) -> None:
        """Start handing out the buffers from the first again (before each recorded pass)."""
        self._cursor = 0

    def refill(self, generator: torch.Generator | None) -> None:
        """The eager draws' numbers, in their order, into the buffers (one host-to-device copy)."""
        if self.flat is None:
            raise RuntimeError("noise tape: refill before freeze")
        if self.shapes:
            torch.cat([torch.randn(shape, generator=generator).flatten() for shape in self.shapes], out=self._host)
            self.flat.copy_(self._host)  # blocking: the host buffer is refilled by the next call
