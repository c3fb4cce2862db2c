"""Properties of the shortcut objective: targets, step-size schedule, sampler."""

import numpy as np
import pytest
import torch
from torch import nn

from shortcut_policy.objectives import OBJECTIVES, ShortcutConfig, ShortcutObjective, build_objective


class ToyNet(nn.Module):
    """A deterministic denoiser whose output depends on x, t, the step size d and cond, and counts its calls."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def encode(self, cond_input):
        return cond_input

    def forward(self, x, t, d, cond):
        self.calls.append((t.clone(), d.clone()))
        shape = (-1,) + (1,) * (x.ndim - 1)
        return self.scale * (torch.sin(x) + t.view(shape) - 0.7 * d.view(shape)) + cond.mean(1).view(shape)


def test_self_consistency_target_is_mean_of_two_half_steps():
    obj = ShortcutObjective(ShortcutConfig(max_steps=8))
    net = ToyNet()
    x = torch.randn(5, 16, 2)
    t = torch.tensor([0.0, 0.25, 0.5, 0.0, 0.5])
    d = torch.tensor([1.0, 0.5, 0.5, 0.25, 0.25])
    cond = torch.randn(5, 3)
    target = obj.self_consistency_target(net, x, t, d, cond)
    for i in range(5):
        xi, ti, ci = x[i : i + 1], t[i : i + 1], cond[i : i + 1]
        half = d[i : i + 1] / 2
        s1 = net(xi, ti, half, ci)
        s2 = net(xi + half * s1, ti + half, half, ci)
        torch.testing.assert_close(target[i : i + 1], (s1 + s2) / 2)


def test_flow_rows_regress_on_data_minus_noise_at_finest_level():
    obj = ShortcutObjective(ShortcutConfig(max_steps=128, sc_fraction=0.25))
    b = 64
    x1, x0 = torch.randn(b, 16, 2), torch.randn(b, 16, 2)
    cond = torch.randn(b, 3)
    x_t, t, d, v, n_sc = obj.make_targets(x1, x0, ToyNet(), cond, torch.Generator().manual_seed(0))
    flow = slice(n_sc, None)
    assert n_sc == 16
    torch.testing.assert_close(v[flow], (x1 - x0)[flow])
    assert (d[flow] == 1 / 128).all()  # the finest step
    tt = t[:, None, None]
    torch.testing.assert_close(x_t, (1 - tt) * x0 + tt * x1)
    assert ((t[flow] >= 0) & (t[flow] < 1)).all()


def test_self_consistency_rows_use_the_target_network_not_the_trained_one():
    obj = ShortcutObjective(ShortcutConfig(max_steps=16, sc_fraction=0.5))
    x1, x0, cond = torch.randn(8, 4, 2), torch.randn(8, 4, 2), torch.randn(8, 3)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    _, _, _, v_a, n_sc = obj.make_targets(x1, x0, ToyNet(1.0), cond, g())
    _, _, _, v_b, _ = obj.make_targets(x1, x0, ToyNet(2.0), cond, g())
    assert not torch.allclose(v_a[:n_sc], v_b[:n_sc])
    torch.testing.assert_close(v_a[n_sc:], v_b[n_sc:])


@pytest.mark.parametrize("batch_size", [8, 16, 24, 32, 48, 64, 100, 128, 256])
def test_every_row_used_levels_balanced_and_all_levels_covered(batch_size):
    obj = ShortcutObjective(ShortcutConfig(max_steps=128, sc_fraction=0.25))
    n_levels_sc = 7  # d = 1 .. 1/64
    gen = torch.Generator().manual_seed(batch_size)
    seen = set()
    for _ in range(n_levels_sc):
        x1, x0, cond = torch.randn(batch_size, 16, 2), torch.randn(batch_size, 16, 2), torch.randn(batch_size, 3)
        x_t, t, d_all, v, n_sc = obj.make_targets(x1, x0, ToyNet(), cond, gen)
        assert x_t.shape[0] == t.shape[0] == d_all.shape[0] == v.shape[0] == batch_size  # no row is dropped
        assert n_sc == max(1, round(0.25 * batch_size))
        sc_levels = (-torch.log2(d_all[:n_sc])).round().long()  # d = 2^-level
        torch.testing.assert_close(d_all[:n_sc], 2.0 ** -sc_levels.float())  # powers of two only
        counts = torch.bincount(sc_levels, minlength=n_levels_sc)
        assert sc_levels.max() < n_levels_sc
        assert counts.max() - counts.min() <= 1 or n_sc < n_levels_sc
        if n_sc >= n_levels_sc:
            assert (counts > 0).all()  # one batch already trains every level
        d = 2.0 ** -sc_levels.float()
        grid = t[:n_sc] / d
        torch.testing.assert_close(grid, grid.round())  # t is a multiple of d
        assert (t[:n_sc] + d <= 1 + 1e-6).all()
        seen.update(sc_levels.tolist())
    assert seen == set(range(n_levels_sc))  # over consecutive batches, every level is trained


@pytest.mark.parametrize("steps", [1, 2, 4, 8, 16, 32, 64, 128])
def test_k_step_sampling_calls_the_network_k_times_with_d_equal_1_over_k(steps):
    obj = ShortcutObjective(ShortcutConfig(max_steps=128))
    net = ToyNet()
    out = obj.sample(net, torch.randn(3, 4), (16, 2), steps, torch.Generator().manual_seed(0))
    assert out.shape == (3, 16, 2)
    assert len(net.calls) == steps
    for i, (t, d) in enumerate(net.calls):
        torch.testing.assert_close(t, torch.full((3,), i / steps))
        assert (d == 1 / steps).all()
    assert out.abs().max() <= 1.0  # clip_sample


def test_euler_sampler_is_exact_for_a_constant_velocity():
    obj = ShortcutObjective(ShortcutConfig(max_steps=8, clip_sample=False))

    class Const(ToyNet):
        def forward(self, x, t, d, cond):
            return torch.full_like(x, 0.3)

    x0 = torch.randn((2, 5, 1), generator=torch.Generator().manual_seed(1))
    for steps in (1, 2, 8):
        out = obj.sample(Const(), torch.zeros(2, 1), (5, 1), steps, torch.Generator().manual_seed(1))
        torch.testing.assert_close(out, x0 + 0.3)


@pytest.mark.parametrize("bad", [0, 3, 6, 256, -1, 1.0, "1", True])
def test_invalid_steps_are_rejected_with_a_clear_error(bad):
    obj = ShortcutObjective(ShortcutConfig(max_steps=128))
    with pytest.raises(ValueError, match="steps: expected a power of two from 1 to 128"):
        obj.validate_steps(bad)


def test_config_validation_and_unknown_options():
    with pytest.raises(ValueError, match="objective.max_steps"):
        ShortcutConfig(max_steps=100)
    with pytest.raises(ValueError, match="objective.sc_fraction"):
        ShortcutConfig(sc_fraction=1.0)
    with pytest.raises(ValueError, match="objective.sc_target"):
        ShortcutConfig(sc_target="teacher")
    with pytest.raises(ValueError, match="unknown options"):
        build_objective({"name": "shortcut", "bootstrap_every": 8})
    with pytest.raises(ValueError, match="objective.name"):
        build_objective({"name": "nope"})


def test_numpy_integer_steps_are_accepted_by_every_objective():
    for name in OBJECTIVES:
        obj = build_objective({"name": name})
        for steps in (np.int64(4), np.int32(1)):
            obj.validate_steps(steps)  # a loop over 2 ** np.arange(8) gives NumPy integers
        out = obj.sample(ToyNet(), torch.zeros(2, 3), (4, 2), np.uint8(2), torch.Generator().manual_seed(0))
        assert out.shape == (2, 4, 2) and torch.isfinite(out).all()  # unsigned: no wrap below zero in DDIM


class DropoutNet(ToyNet):
    """ToyNet with dropout on its output: in train mode every call differs."""

    def __init__(self) -> None:
        super().__init__()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x, t, d, cond):
        return self.dropout(super().forward(x, t, d, cond))


def test_online_self_consistency_targets_are_built_without_dropout():
    obj = ShortcutObjective(ShortcutConfig(max_steps=8, sc_fraction=0.5))
    net = DropoutNet().train()
    x1, cond = torch.randn(8, 4, 2), torch.randn(8, 3)
    captured = []
    make_targets = obj.make_targets

    def spy(*args, **kwargs):
        captured.append(args[2].training)  # the target network's mode while the targets are built
        return make_targets(*args, **kwargs)

    obj.make_targets = spy
    obj.loss(net, x1, cond, generator=torch.Generator().manual_seed(0))
    assert captured == [False] and net.training and net.dropout.training  # eval for the targets, then train again
    targets = [obj.make_targets(x1, torch.zeros_like(x1), net, cond, torch.Generator().manual_seed(1))[3] for _ in range(2)]
    assert not torch.equal(*targets)  # called outside loss(), dropout is on: the guard above is what removes it


def test_one_level_shortcut_trains_on_flow_rows_only():
    obj = ShortcutObjective(ShortcutConfig(max_steps=1))
    assert obj.split(16) == 0
    loss, metrics = obj.loss(ToyNet(), torch.randn(16, 4, 2), torch.randn(16, 3), generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and "loss_sc" not in metrics
