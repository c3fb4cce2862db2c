"""The baseline objectives: flow matching and Diffusion Policy's DDPM/DDIM, checked against diffusers."""

import math

import pytest
import torch

from shortcut_policy.config import load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import OBJECTIVES, DDPMObjective, FlowMatchingObjective, ShortcutObjective, build_objective
from shortcut_policy.objectives.ddpm import DDPMConfig, cosine_betas


class FixedNet(torch.nn.Module):
    """A deterministic stand-in network that counts its calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def encode(self, cond_input):
        return cond_input

    def forward(self, x, t, d, cond):
        self.calls += 1
        shape = (-1,) + (1,) * (x.ndim - 1)
        return 0.5 * torch.tanh(x) + 0.3 * t.view(shape) + 0.1 * cond.mean(1).view(shape)


@pytest.mark.parametrize(
    "objective, steps, nfe",
    [
        (ShortcutObjective(), 1, 1), (ShortcutObjective(), 8, 8), (ShortcutObjective(), 128, 128),
        (FlowMatchingObjective(), 1, 1), (FlowMatchingObjective(), 16, 16),
        (DDPMObjective(), 1, 1), (DDPMObjective(), 16, 16), (DDPMObjective(), 100, 100),
    ],
)
def test_sampler_network_calls_equal_nfe(objective, steps, nfe):
    net = FixedNet()
    out = objective.sample(net, torch.zeros(2, 3), (16, 2), steps, torch.Generator().manual_seed(0))
    assert out.shape == (2, 16, 2) and torch.isfinite(out).all()
    assert net.calls == nfe


@pytest.mark.parametrize("name, bad", [("flow_matching", 0), ("flow_matching", 2000), ("ddpm", 101), ("ddpm", 0), ("shortcut", 5)])
def test_steps_an_objective_cannot_honour_get_a_clear_error(name, bad):
    with pytest.raises(ValueError, match=f"steps: expected .*{name if name != 'shortcut' else 'shortcut'}"):
        build_objective({"name": name}).validate_steps(bad)


@pytest.mark.parametrize("name", list(OBJECTIVES))
@pytest.mark.parametrize("backbone", ["unet", "transformer_cross_attention", "transformer_adaln"])
def test_each_objective_loss_decreases_on_a_tiny_fixed_batch(name, backbone):
    """Also: every backbone supports MeanFlow's forward-mode pass (its Jacobian-vector product)."""
    torch.manual_seed(0)
    options = {"name": name, **({"sc_target": "online", "max_steps": 16} if name == "shortcut" else {})}
    objective = build_objective(options)
    backbone, _, conditioning = backbone.partition("_")
    policy = load_config(
        {"policy": {"backbone": backbone, "horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32], "embed_dim": 16},
                    "transformer": {"d_model": 32, "n_layers": 2, "dropout": 0.0, "conditioning": conditioning or "adaln"}}}
    ).policy
    net = build_network(policy, obs_features({"k": (4,)}), 2)
    x1 = torch.rand(16, 8, 2) * 2 - 1
    obs = {"k": torch.randn(16, 2, 4)}
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def fixed_loss():  # the reported loss: MeanFlow's squared error, whose adaptively weighted loss stays near 1
        return objective.loss(net, x1, obs, generator=torch.Generator().manual_seed(0))[1]["loss"]

    before = fixed_loss()
    for _ in range(120):  # the same batch, noise and t every step: the network can fit it
        loss, _ = objective.loss(net, x1, obs, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    # MeanFlow's interval targets are the network's own derivative along the path, so they move as it
    # learns and the fixed batch is fitted more slowly
    assert fixed_loss() < (0.5 if name == "meanflow" else 0.3) * before


diffusers = pytest.importorskip("diffusers")


def reference_scheduler(kind: str, spacing: str = "leading"):
    cls = diffusers.DDIMScheduler if kind == "ddim" else diffusers.DDPMScheduler
    kwargs = dict(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", clip_sample=True, prediction_type="epsilon")
    if kind == "ddim":
        kwargs.update(set_alpha_to_one=True, steps_offset=0, timestep_spacing=spacing)
    else:
        kwargs.update(variance_type="fixed_small")
    return cls(**kwargs)


def test_cosine_schedule_matches_diffusers():
    torch.testing.assert_close(cosine_betas(100).float(), reference_scheduler("ddpm").betas, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
@pytest.mark.parametrize("steps", [1, 2, 3, 4, 8, 16])
def test_ddim_k_steps_matches_diffusers(steps, spacing):
    objective = DDPMObjective(DDPMConfig(timestep_spacing=spacing))
    net = FixedNet()
    cond = torch.randn(3, 5)
    ours = objective.sample(net, cond, (16, 2), steps, torch.Generator().manual_seed(7))

    scheduler = reference_scheduler("ddim", spacing)
    scheduler.set_timesteps(steps)
    assert scheduler.timesteps.tolist() == objective.ddim_timesteps(steps)
    x = torch.randn((3, 16, 2), generator=torch.Generator().manual_seed(7))
    for k in scheduler.timesteps:
        eps = net(x, torch.full((3,), 1.0 - int(k) / 100), torch.zeros(3, dtype=torch.long), cond)
        x = scheduler.step(eps, k, x).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 16])
def test_ddim_trailing_spacing_starts_every_budget_at_the_noisy_end(steps):
    """Leading spacing starts one step at k = 0, the nearly clean end (two steps at k = 50), though
    sampling starts from pure noise; trailing starts every budget at k = T - 1."""
    leading = DDPMObjective(DDPMConfig(timestep_spacing="leading")).ddim_timesteps(steps)
    trailing = DDPMObjective(DDPMConfig(timestep_spacing="trailing")).ddim_timesteps(steps)
    assert trailing[0] == 99 and len(trailing) == len(set(trailing)) == steps
    assert trailing == sorted(trailing, reverse=True) and trailing[-1] >= 0
    assert leading[0] == (steps - 1) * (100 // steps)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_takes_exactly_the_steps_asked_at_every_budget(spacing):
    """diffusers' trailing grid has one timestep too many (k = -1) at some budgets, 29 of 100 among
    them; ours has exactly ``steps`` distinct timesteps in [0, T), the same as diffusers' wherever
    diffusers' count is right, and the sampler calls the network once per step."""
    objective = DDPMObjective(DDPMConfig(timestep_spacing=spacing))
    scheduler = reference_scheduler("ddim", spacing)
    for steps in range(1, 100):
        ours = objective.ddim_timesteps(steps)
        assert len(ours) == len(set(ours)) == steps and ours == sorted(ours, reverse=True)
        assert 0 <= ours[-1] and ours[0] <= 99
        scheduler.set_timesteps(steps)
        if len(scheduler.timesteps) == steps:
            assert scheduler.timesteps.tolist() == ours, steps
    net = FixedNet()
    calls = []
    net.register_forward_hook(lambda module, inputs, output: calls.append(inputs[1][0].item()))
    objective.sample(net, torch.randn(2, 5), (16, 2), 29, torch.Generator().manual_seed(0))
    assert len(calls) == 29 and max(calls) <= 1.0  # t = 1 - k / T never passes 1 (k = -1)


def test_ddpm_steps_match_diffusers_with_the_same_noise():
    objective = DDPMObjective()
    scheduler = reference_scheduler("ddpm")
    scheduler.set_timesteps(100)
    x = torch.randn(4, 16, 2, generator=torch.Generator().manual_seed(1))
    for k in (99, 50, 10, 1, 0):
        eps = torch.randn(4, 16, 2, generator=torch.Generator().manual_seed(k + 100))
        ours = objective.step(x, eps, k, k - 1, stochastic=True, generator=torch.Generator().manual_seed(k))
        ref = scheduler.step(eps, k, x, generator=torch.Generator().manual_seed(k)).prev_sample
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5, msg=f"timestep {k}")


def test_ddpm_training_noise_level_follows_the_schedule():
    objective = DDPMObjective()
    abar = objective.alpha_bars
    assert abar[0] > 0.99 and abar[-1] < 1e-3  # clean at k=0, (almost) pure noise at k=T-1
    assert math.isclose(float(objective._t_input(torch.tensor(0))), 1.0)
