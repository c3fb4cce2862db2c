"""The GPU fast path: replanning replays a captured CUDA graph whose noise comes from a tape refilled with
the eager draws' numbers. The tape is checked here on the CPU; the graph itself where CUDA exists."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_policy import ACTION_DIM, OBS_DIM, make_policy

from shortcut_policy.config import load_config
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import OBJECTIVES, build_objective
from shortcut_policy.objectives.noise import NoiseTape, draw_noise, noise_from
from shortcut_policy.policy import Policy

CPU = torch.device("cpu")


def test_a_refilled_tape_holds_the_eager_draws():
    generator = torch.Generator().manual_seed(3)
    eager = [draw_noise((2, 3), generator, CPU), draw_noise((40,), generator, CPU)]  # a small and a vectorised draw
    tape = NoiseTape()
    with noise_from(tape):
        assert not draw_noise((2, 3), None, CPU).any()  # learning: shapes only
        draw_noise((40,), None, CPU)
    tape.freeze(CPU)
    tape.rewind()
    with noise_from(tape):
        buffers = [draw_noise((2, 3), None, CPU), draw_noise((40,), None, CPU)]
        with pytest.raises(RuntimeError, match=r"noise tape: draw 2 asks for \(5,\), the tape learned \[\(2, 3\), \(40,\)\]"):
            draw_noise((5,), None, CPU)
    tape.refill(torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(eager, buffers))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_sampler_draws_its_noise_through_the_tape(name):
    """What the graph relies on: a sampling pass on the tape, refilled, gives the eager pass's samples."""
    policy = make_policy(objective=name)
    objective = build_objective({"name": name})
    steps = 100 if name == "ddpm" else 4  # DDPM draws noise at every step as well
    cond = policy.network.encode({"keypoint": torch.rand(2, 2, OBS_DIM) * 2 - 1})
    eager = objective.sample(policy.network, cond, (16, ACTION_DIM), steps, torch.Generator().manual_seed(7))
    tape = NoiseTape()
    with noise_from(tape):
        objective.sample(policy.network, cond, (16, ACTION_DIM), steps)
        tape.freeze(CPU)
        tape.rewind()
        tape.refill(torch.Generator().manual_seed(7))
        taped = objective.sample(policy.network, cond, (16, ACTION_DIM), steps)
    assert len(tape.shapes) == (100 if name == "ddpm" else 1) and torch.equal(eager, taped)


def test_a_cuda_graph_needs_a_cuda_device():
    policy = make_policy()
    assert policy.cuda_graph is False  # the eager path on the CPU
    with pytest.raises(ValueError, match=r"cuda_graph: CUDA graphs need a CUDA device, got device cpu"):
        Policy(policy.network, policy.normalizer, policy.objective, policy.contract, "cpu", cuda_graph=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name, steps, backbone", [("shortcut", 1, "unet"), ("meanflow", 2, "unet"), ("ddpm", 100, "unet"),
                                                   ("ddpm", 4, "unet"), ("shortcut", 1, "adaln"), ("shortcut", 1, "cross_attention")])
def test_the_graph_gives_the_eager_actions(name, steps, backbone):
    cpu = make_policy(objective=name)
    if backbone != "unet":
        torch.manual_seed(0)
        config = load_config({"policy": {"backbone": "transformer", "transformer": {"conditioning": backbone}},
                              "objective": {"name": name}})
        contract = dataclasses.replace(cpu.contract, policy=config.policy)
        cpu = Policy(build_network(config.policy, contract.obs, ACTION_DIM), cpu.normalizer, cpu.objective, contract)
    args = (cpu.network, cpu.normalizer, cpu.objective, cpu.contract, "cuda")
    graphed, eager = Policy(*args, cuda_graph=True), Policy(*args, cuda_graph=False)
    rng = np.random.default_rng(0)
    for seed in (0, 1):  # the second call replays the graph captured by the first
        obs = {"keypoint": rng.uniform(0, 512, (1, 2, OBS_DIM))}
        a = graphed.predict_chunk(obs, steps, full=True, generator=torch.Generator().manual_seed(seed))
        b = eager.predict_chunk(obs, steps, full=True, generator=torch.Generator().manual_seed(seed))
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    graphed.predict_chunk({"keypoint": rng.uniform(0, 512, (3, 2, OBS_DIM))}, steps)  # batched: eager
    assert list(graphed._graphs) == [(steps, 1)]
