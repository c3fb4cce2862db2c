"""A GPU fast path for acting: one replanning call (normalize -> encode -> sample -> unnormalize) captured
in a CUDA graph and replayed.

A small policy network at batch 1 is bound by kernel launches, not by arithmetic: eager PyTorch on a
GPU spends as long launching a step's few hundred small kernels as two CPU cores spend computing them.
A CUDA graph records the launches once and replays them as one. Its inputs and outputs live at fixed
addresses: observations are copied into static buffers, the sampler's noise comes from a
:class:`NoiseTape` refilled with the eager draws' numbers, and the actions are read from a static
output. So the graph's actions equal the eager path's for the same generator, to float rounding.
One graph per (step budget, batch size), captured when first asked for; the policy asks at batch 1.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from .objectives.noise import NoiseTape, noise_from

WARMUP_PASSES = 3  # eager passes on a side stream before capture, as CUDA graph capture requires


class GraphedSampler:
    """``predict(obs, generator)``: (B, horizon, A) unnormalized actions for raw observation histories
    ``obs[key]`` (B, n_obs_steps, *shape), from the captured graph of ``policy`` at ``steps`` steps."""

    def __init__(self, policy: Any, steps: int, batch_size: int) -> None:
        if policy.device.type != "cuda":
            raise ValueError(f"cuda_graph: a CUDA graph needs a policy on a CUDA device, got {policy.device}")
        self.policy, self.steps = policy, steps
        self.inputs = {
            k: torch.zeros((batch_size, policy.n_obs_steps, *policy.obs_shapes[k]), device=policy.device)
            for k in policy.obs_keys
        }
        self.tape = NoiseTape()
        with torch.cuda.device(policy.device):  # the streams and the capture on the policy's GPU, whichever is current
            self._capture()

    def _capture(self) -> None:
        policy = self.policy
        side = torch.cuda.Stream(policy.device)
        side.wait_stream(torch.cuda.current_stream(policy.device))
        with torch.inference_mode(), torch.cuda.stream(side), noise_from(self.tape):
            self._pass()  # learns the noise draws' shapes
            self.tape.freeze(policy.device)
            for _ in range(WARMUP_PASSES):
                self.tape.rewind()
                self._pass()
        torch.cuda.current_stream(policy.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.tape.rewind()
        with torch.inference_mode(), torch.cuda.graph(self.graph), noise_from(self.tape):
            self.output = self._pass()

    def _pass(self) -> torch.Tensor:
        return self.policy.chunk(self.inputs, self.steps, None)  # the noise comes from the tape

    def predict(self, obs: Mapping[str, np.ndarray], generator: torch.Generator | None) -> torch.Tensor:
        for key, buffer in self.inputs.items():
            buffer.copy_(torch.as_tensor(obs[key], dtype=torch.float32))
        self.tape.refill(generator)
        with torch.cuda.device(self.policy.device):
            self.graph.replay()
        return self.output
