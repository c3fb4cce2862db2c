"""MeanFlow: its Jacobian-vector-product target, its (t, d) sampling, one-step mode coverage, and the
real-valued step input of every backbone that makes it expressible."""

import pytest
import torch
from torch import nn

from shortcut_policy.config import load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import MeanFlowConfig, MeanFlowObjective, build_objective


def tiny_network(backbone: str) -> nn.Module:
    """``transformer_adaln``: the transformer with adaLN conditioning, its zero-initialised layers given weights."""
    conditioning = "adaln" if backbone == "transformer_adaln" else "cross_attention"
    policy = load_config(
        {"policy": {"backbone": backbone.removesuffix("_adaln"), "horizon": 8, "n_action_steps": 4,
                    "unet": {"down_dims": [16, 32], "embed_dim": 16},
                    "transformer": {"d_model": 32, "n_layers": 2, "dropout": 0.0, "conditioning": conditioning}}}
    ).policy
    net = build_network(policy, obs_features({"k": (4,)}), 2)
    if conditioning == "adaln":  # adaLN-Zero starts as zero output, with no derivative to check
        for name, p in net.named_parameters():
            if not p.any():
                nn.init.normal_(p, std=0.1, generator=torch.Generator().manual_seed(len(name)))
    return net


@pytest.mark.parametrize("backbone", ["unet", "transformer", "transformer_adaln"])
def test_jvp_target_equals_a_finite_difference_along_the_path(backbone):
    """u_tgt = v + d du/dt with du/dt the derivative of u(x_t + s v, t + s, d - s) in s at 0 (the end t + d fixed)."""
    torch.manual_seed(0)
    net = tiny_network(backbone).double().eval()
    b = 6
    x_t, v = torch.randn(b, 8, 2, dtype=torch.float64), torch.randn(b, 8, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 0.3, 0.45, 0.6, 0.05], dtype=torch.float64)
    d = torch.tensor([0.5, 0.3, 0.6, 0.2, 0.1, 0.9], dtype=torch.float64)
    cond = net.encode({"k": torch.randn(b, 2, 4, dtype=torch.float64)})
    target = MeanFlowObjective().interval_target(net, x_t, t, d, v, cond)
    eps = 1e-7  # t and d enter through sinusoids up to 100 rad per unit: a wider step has a truncation error
    with torch.no_grad():
        ahead = net(x_t + eps * v, t + eps, d - eps, cond)
        behind = net(x_t - eps * v, t - eps, d + eps, cond)
    du_dt = (ahead - behind) / (2 * eps)
    assert du_dt.abs().mean() > 1e-3  # the check is not vacuous: u moves along the path
    torch.testing.assert_close(target, v + d[:, None, None] * du_dt, rtol=1e-5, atol=1e-6)
    assert not target.requires_grad  # no gradient through the target


def test_the_difference_target_matches_the_jvp_target_in_float32():
    """target_pass=difference: the central difference along the path, at the default step in float32, is
    the forward-mode target to within the step's truncation and float32 rounding."""
    torch.manual_seed(0)
    b = 16
    x_t, v = torch.randn(b, 8, 2), torch.randn(b, 8, 2)
    t, d = torch.rand(b) * 0.5, torch.rand(b) * 0.5
    t[:3], d[:3] = 0.0, torch.tensor([1.0, 1e-4, 0.5])  # the one-step corner, d below the step, t at the noise
    for backbone, prediction in (("unet", "velocity"), ("unet", "chunk"), ("transformer", "velocity")):
        net = tiny_network(backbone).eval()
        cond = net.encode({"k": torch.randn(b, 2, 4)})
        exact = MeanFlowObjective(MeanFlowConfig(prediction=prediction)).interval_target(net, x_t, t, d, v, cond)
        differenced = MeanFlowObjective(MeanFlowConfig(target_pass="difference", prediction=prediction)).interval_target(
            net, x_t, t, d, v, cond)
        derivative = (exact - v).abs().mean()
        assert derivative > 1e-2, backbone  # not vacuous: d du/dt is a visible part of the target
        assert (differenced - exact).abs().mean() < 0.01 * derivative, (backbone, prediction)
        assert not differenced.requires_grad


def test_jvp_target_of_a_known_flow_is_the_true_average_velocity():
    """For the path x_s = x e^(s - t), v(x) = x; a network that is exactly the average velocity
    u = x (e^d - 1) / d satisfies the MeanFlow identity: its target equals itself."""

    class Exact(nn.Module):
        def encode(self, c):
            return c

        def forward(self, x, t, d, cond):
            return x * torch.expm1(d)[:, None, None] / d[:, None, None]

    x = torch.randn(4, 3, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.2, 0.0, 0.5], dtype=torch.float64)
    d = torch.tensor([0.3, 0.8, 1.0, 0.5], dtype=torch.float64)
    target = MeanFlowObjective().interval_target(Exact(), x, t, d, x, torch.zeros(4, 0, dtype=torch.float64))
    torch.testing.assert_close(target, Exact()(x, t, d, None))


def test_time_sampling_follows_the_paper_in_this_library_convention():
    obj = MeanFlowObjective()
    t, d = obj.sample_times(40_000, torch.Generator().manual_seed(0))
    n = obj.split(40_000)
    assert n == 10_000  # a quarter of the rows have an interval (r != t)
    assert (d[:n] > 0).all() and (d[n:] == 0).all()
    assert ((t > 0) & (t < 1) & (t + d <= 1)).all()  # intervals run from t toward the data at 1
    # the paper's time of the noisy end, t_p = 1 - t, is the larger of two logit-normal(-0.4, 1) draws;
    # for the d = 0 rows it is one ordered draw's maximum: its median is above the single draw's sigmoid(-0.4)
    t_paper = 1 - t[n:]
    assert 0.45 < t_paper.median().item() < 0.6
    uniform = MeanFlowObjective(MeanFlowConfig(time_sampler="uniform", interval_fraction=1.0))
    t_u, d_u = uniform.sample_times(40_000, torch.Generator().manual_seed(0))
    assert (d_u > 0).all()
    assert abs((t_u + d_u).mean().item() - 2 / 3) < 0.01  # 1 - min of two uniforms has mean 2/3


@pytest.mark.parametrize("flow_time, near_data", [("later_of_two", (0.0, 0.003)), ("one_draw", (0.03, 0.042)), ("uniform", (0.09, 0.11))])
def test_the_flow_rows_time_is_drawn_as_asked_and_the_interval_rows_are_untouched(flow_time, near_data):
    """The share of d = 0 rows in the path's last tenth (t > 0.9): about 0.1% for the later of two logit-normal
    draws, P(logit-normal(-0.4, 1) < 0.1) = 3.6% for one draw, 10% uniform. The interval rows do not move."""
    obj = MeanFlowObjective(MeanFlowConfig(flow_time=flow_time))
    t, d = obj.sample_times(40_000, torch.Generator().manual_seed(0))
    t_ref, d_ref = MeanFlowObjective().sample_times(40_000, torch.Generator().manual_seed(0))
    n = obj.split(40_000)
    assert torch.equal(t[:n], t_ref[:n]) and torch.equal(d[:n], d_ref[:n]) and (d[n:] == 0).all()
    share = (t[n:] > 0.9).double().mean().item()
    assert near_data[0] <= share <= near_data[1], share
    assert ((t >= 0) & (t <= 1)).all()


def test_corner_rows_are_the_one_step_map_and_the_rest_are_untouched():
    obj = MeanFlowObjective(MeanFlowConfig(corner_fraction=0.5))
    t, d = obj.sample_times(64, torch.Generator().manual_seed(0))
    t_ref, d_ref = MeanFlowObjective().sample_times(64, torch.Generator().manual_seed(0))
    n = obj.split(64)  # 16 interval rows, the first 8 at (0, 1)
    assert (t[:8] == 0).all() and (d[:8] == 1).all()
    assert torch.equal(t[8:], t_ref[8:]) and torch.equal(d[8:], d_ref[8:]) and (d[8:n] < 1).all()


def test_endpoint_rows_end_at_the_data_from_a_uniform_time_after_the_corners():
    obj = MeanFlowObjective(MeanFlowConfig(corner_fraction=0.25, endpoint_fraction=0.5))
    t, d = obj.sample_times(4096, torch.Generator().manual_seed(0))
    n = obj.split(4096)  # 1024 interval rows: 256 corners, then 512 ending at the data
    assert (t[:256] == 0).all() and (d[:256] == 1).all()
    end_t, end_d = t[256:768], d[256:768]
    torch.testing.assert_close(end_t + end_d, torch.ones(512))
    assert ((end_t >= 0) & (end_t < 1)).all() and (end_d > 0).all()
    assert abs(end_t.mean().item() - 0.5) < 0.05 and (end_t < 0.1).any() and (end_t > 0.9).any()  # the whole path
    assert ((t[768:n] + d[768:n]) < 1).all() and (d[n:] == 0).all()  # the other interval rows and the flow rows


@pytest.mark.parametrize("prediction", ["velocity", "chunk"])
def test_corner_rows_with_a_k_step_target_learn_where_k_steps_take_their_own_noise(prediction):
    """corner_steps=4: the corner rows (t, d) = (0, 1) are asked for u = x_4 - x0, x_4 the network's own
    4-step sample (clipped) from the row's noise; the other interval rows keep the identity's target."""
    torch.manual_seed(0)
    net = tiny_network("unet")
    obj = MeanFlowObjective(MeanFlowConfig(corner_fraction=0.5, corner_steps=4, prediction=prediction))
    x0, cond = torch.randn(5, 8, 2), net.encode({"k": torch.randn(5, 2, 4)})
    u, x = obj.velocity(net), x0
    with torch.no_grad():
        for i in range(4):
            x = x + u(x, torch.full((5,), i / 4), torch.full((5,), 0.25), cond) / 4
    torch.testing.assert_close(obj.corner_target(net, x0, cond), x.clamp(-1, 1))

    seen = {}
    corner, interval = obj.corner_target, obj.interval_target

    def corner_rows(n, x_t, c):
        seen["corner"] = x_t
        return corner(n, x_t, c)

    def interval_rows(n, x_t, t, d, v, c):
        seen["interval"] = (t, d)
        return interval(n, x_t, t, d, v, c)

    obj.corner_target, obj.interval_target = corner_rows, interval_rows
    loss, _ = obj.loss(net, torch.rand(64, 8, 2) * 2 - 1, {"k": torch.randn(64, 2, 4)}, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert seen["corner"].shape[0] == 8  # 16 interval rows, half of them corners
    t, d = seen["interval"]
    assert t.shape[0] == 8 and (d < 1).all() and (t > 0).all()  # the rest, at their drawn (t, d)


def test_a_chunk_predicting_network_gives_its_chunk_in_one_step_and_the_velocity_toward_it():
    """prediction=chunk: u = (x̂ - x_t) / max(1 - t, gap), so one step from noise is x̂ itself (clipped)."""
    x_hat = torch.linspace(-1.5, 1.5, 8).reshape(1, 4, 2).expand(3, 4, 2)

    class Chunk(nn.Module):
        def encode(self, c):
            return c

        def forward(self, x, t, d, cond):
            return x_hat + 0 * x

    obj = MeanFlowObjective(MeanFlowConfig(prediction="chunk", clip_sample=False))
    torch.testing.assert_close(obj.sample(Chunk(), torch.zeros(3, 1), (4, 2), 1, torch.Generator().manual_seed(1)), x_hat)
    clipped = MeanFlowObjective(MeanFlowConfig(prediction="chunk")).sample(Chunk(), torch.zeros(3, 1), (4, 2), 1)
    torch.testing.assert_close(clipped, x_hat.clamp(-1, 1))
    x = torch.randn(3, 4, 2)
    u = obj.velocity(Chunk())(x, torch.tensor([0.0, 0.5, 0.99]), torch.full((3,), 0.01), None)
    torch.testing.assert_close(u, (x_hat - x) / torch.tensor([1.0, 0.5, 0.05])[:, None, None])


def test_the_jvp_target_of_a_chunk_predicting_network_is_its_velocitys_derivative():
    """The target differentiates u = (x̂ - x_t) / (1 - t), the division included, not the network's raw output."""
    torch.manual_seed(0)
    net = tiny_network("unet").double().eval()
    obj = MeanFlowObjective(MeanFlowConfig(prediction="chunk"))
    b = 4
    x_t, v = torch.randn(b, 8, 2, dtype=torch.float64), torch.randn(b, 8, 2, dtype=torch.float64)
    t = torch.tensor([0.1, 0.3, 0.6, 0.0], dtype=torch.float64)
    d = torch.tensor([0.5, 0.3, 0.2, 1.0], dtype=torch.float64)
    cond = net.encode({"k": torch.randn(b, 2, 4, dtype=torch.float64)})
    u = obj.velocity(net)
    eps = 1e-7
    with torch.no_grad():
        du_dt = (u(x_t + eps * v, t + eps, d - eps, cond) - u(x_t - eps * v, t - eps, d + eps, cond)) / (2 * eps)
    target = obj.interval_target(net, x_t, t, d, v, cond)
    torch.testing.assert_close(target, v + d[:, None, None] * du_dt, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(target, MeanFlowObjective().interval_target(net, x_t, t, d, v, cond))


@pytest.mark.parametrize("steps", [1, 2, 3, 8])
def test_k_step_sampling_tells_the_network_d_equal_1_over_k(steps):
    calls = []

    class Spy(nn.Module):
        def encode(self, c):
            return c

        def forward(self, x, t, d, cond):
            calls.append((t.clone(), d.clone()))
            return torch.full_like(x, 0.25)

    out = MeanFlowObjective(MeanFlowConfig(clip_sample=False)).sample(Spy(), torch.zeros(3, 1), (4, 2), steps, torch.Generator().manual_seed(1))
    x0 = torch.randn((3, 4, 2), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, x0 + 0.25)  # steps of size 1/k summing to one
    assert len(calls) == steps
    for i, (t, d) in enumerate(calls):
        torch.testing.assert_close(t, torch.full((3,), i / steps))
        torch.testing.assert_close(d, torch.full((3,), 1 / steps))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"interval_fraction": 1.5}, "objective.interval_fraction: expected a value in \\[0, 1\\], got 1.5"),
        ({"time_sampler": "beta"}, "objective.time_sampler: expected one of"),
        ({"time_std": 0.0}, "objective.time_std"),
        ({"adaptive_p": -1.0}, "objective.adaptive_p"),
        ({"adaptive_c": 0.0}, "objective.adaptive_c"),
        ({"flow_time": "max"}, "objective.flow_time: expected one of \\['later_of_two', 'one_draw', 'uniform'\\], got 'max'"),
        ({"prediction": "x"}, "objective.prediction: expected one of \\['velocity', 'chunk'\\]"),
        ({"target_pass": "fd"}, "objective.target_pass: expected one of \\['jvp', 'difference'\\], got 'fd'"),
        ({"difference_step": 0.01}, "objective.difference_step: expected a step in \\[1e-05, 0.002\\]"),
        ({"corner_fraction": 1.5}, "objective.corner_fraction: expected a value in \\[0, 1\\], got 1.5"),
        ({"corner_fraction": 0.5, "endpoint_fraction": 0.75},
         "objective.endpoint_fraction: expected a value in \\[0, 1 - corner_fraction\\] = \\[0, 0.5\\], got 0.75"),
        ({"corner_steps": 1, "corner_fraction": 0.25}, "objective.corner_steps: expected 0 \\(the MeanFlow target\\) or a step count in \\[2, 128\\], got 1"),
        ({"corner_steps": 8}, "objective.corner_steps: 8 steps' target is for the corner rows, and objective.corner_fraction is 0"),
        ({"chunk_gap": 0.0}, "objective.chunk_gap: expected a value in \\(0, 1\\], got 0.0"),
        ({"max_steps": 8}, "unknown options \\['max_steps'\\]"),
    ],
)
def test_bad_options_get_a_clear_error(options, match):
    with pytest.raises(ValueError, match=match):
        build_objective({"name": "meanflow", **options})


@pytest.mark.parametrize("bad", [0, 1025, 2.0, True])
def test_steps_it_cannot_honour_get_a_clear_error(bad):
    with pytest.raises(ValueError, match="steps: expected an integer from 1 to 1024 \\(meanflow\\)"):
        MeanFlowObjective().validate_steps(bad)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_a_batch_of_only_one_kind_of_row_trains(fraction):
    net = tiny_network("unet")
    obj = MeanFlowObjective(MeanFlowConfig(interval_fraction=fraction))
    loss, metrics = obj.loss(net, torch.rand(8, 8, 2) * 2 - 1, {"k": torch.randn(8, 2, 4)}, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and ("loss_interval" in metrics) == (fraction > 0)


# --------------------------------------------------------------- one step on a multimodal distribution
MODES = torch.tensor([[0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [-0.5, -0.5]])  # 4 modes, std 0.03, 1.0 apart
ON_MODE = 0.15  # a sample "lands on" a mode within this distance (5 standard deviations)


class PointMLP(nn.Module):
    """A denoiser of 2-D points (B, 1, 2) with raw t and d inputs and no condition."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(4, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )

    def encode(self, cond_input):
        return cond_input

    def forward(self, x, t, d, cond):
        return self.net(torch.cat([x.flatten(1), t[:, None], d[:, None]], 1)).view_as(x)


def one_step_samples(name: str, train_steps: int = 2000) -> torch.Tensor:
    torch.manual_seed(0)
    net, objective = PointMLP(), build_objective({"name": name})
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(train_steps):
        x1 = (MODES[torch.randint(4, (256,), generator=gen)] + 0.03 * torch.randn(256, 2, generator=gen))[:, None]
        loss, _ = objective.loss(net, x1, torch.zeros(256, 0), generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return objective.sample(net, torch.zeros(2000, 0), (1, 2), 1, torch.Generator().manual_seed(1))[:, 0]


@pytest.mark.slow
def test_one_meanflow_step_covers_every_mode_where_one_flow_matching_step_collapses_to_the_mean():
    """Measure: the share of one-step samples within ON_MODE of a mode (precision), and each mode's
    share of all samples (coverage; 0.25 each would be perfect)."""
    meanflow, flow = one_step_samples("meanflow"), one_step_samples("flow_matching")
    near, which = torch.cdist(meanflow, MODES).min(1)
    shares = torch.bincount(which[near < ON_MODE], minlength=4) / len(meanflow)
    assert (near < ON_MODE).float().mean() > 0.6
    assert (shares > 0.08).all(), shares  # every mode is reached
    near_fm = torch.cdist(flow, MODES).min(1).values
    assert (near_fm < ON_MODE).float().mean() < 0.05  # one flow step lands between the modes...
    assert flow.mean(0).norm() < 0.25 and flow.std(0).max() < 0.15  # ...bunched near the mean (0, 0), 0.71 from each mode


@pytest.mark.parametrize("backbone", ["unet", "transformer", "transformer_adaln", "dit"])
def test_every_backbone_takes_a_real_valued_step(backbone):
    """Any d in [0, 1], not only shortcut's powers of two, and the output depends on it smoothly."""
    torch.manual_seed(0)
    if backbone == "dit":
        from shortcut_policy.image.dit import DiT

        net, x, cond = DiT(image_size=8, channels=1, num_classes=3, hidden=32, depth=2, heads=2), torch.randn(3, 1, 8, 8), None
        cond = net.encode(torch.tensor([0, 1, 2]))
        for p in net.parameters():  # adaLN-Zero starts as zero output: give it weights
            nn.init.normal_(p, std=0.2)
    else:
        net, x = tiny_network(backbone), torch.randn(3, 8, 2)
        cond = net.encode({"k": torch.randn(3, 2, 4)})
    t = torch.full((3,), 0.3)
    with torch.no_grad():
        outs = [net(x, t, torch.full((3,), d), cond) for d in (0.0, 0.3, 0.3 + 1e-6, 1 / 3, 1.0)]
    assert all(torch.isfinite(o).all() for o in outs)
    assert (outs[0] - outs[1]).abs().max() > 1e-5 and (outs[3] - outs[4]).abs().max() > 1e-5  # float noise: ~1e-7
    assert (outs[1] - outs[2]).abs().max() < 1e-3 * (outs[1] - outs[4]).abs().max()  # continuous in d


def test_the_loss_is_the_adaptively_weighted_per_row_sum_of_squares():
    """loss = mean over rows of sg(w) * err, err the row's sum of squares, w = 1 / (err + c)^p."""
    net = tiny_network("unet")
    obj = MeanFlowObjective(MeanFlowConfig(adaptive_p=0.75, adaptive_c=0.1))
    x1, obs = torch.rand(8, 8, 2) * 2 - 1, {"k": torch.randn(8, 2, 4)}
    loss, metrics = obj.loss(net, x1, obs, generator=torch.Generator().manual_seed(0))
    # rebuild the rows from the same draws
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(x1.shape, generator=gen)
    t, d = obj.sample_times(8, gen)
    x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * x1
    cond = net.encode(obs)
    n = obj.split(8)
    target = torch.cat([obj.interval_target(net, x_t[:n], t[:n], d[:n], (x1 - x0)[:n], cond[:n]), (x1 - x0)[n:]])
    with torch.no_grad():
        err = (net(x_t, t, d, cond) - target).pow(2).flatten(1).sum(1)
    torch.testing.assert_close(loss.detach(), (err / (err + 0.1) ** 0.75).mean())
    assert metrics["loss"] == pytest.approx((err / 16).mean().item(), rel=1e-5)  # reported: per-dimension error


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_a_small_batch_still_has_an_interval_row(batch_size):
    assert MeanFlowObjective().split(batch_size) == 1
    assert MeanFlowObjective(MeanFlowConfig(interval_fraction=0.0)).split(batch_size) == 0


@pytest.mark.parametrize("transformer", [{"causal": False, "conditioning": "cross_attention"},
                                         {"n_cond_layers": 1, "conditioning": "cross_attention"}, {"conditioning": "adaln"}])
def test_the_jvp_runs_where_the_transformer_takes_its_inference_fast_path(transformer):
    """The validation loss evaluates the EMA network in eval mode without gradients, where torch's
    nn.Transformer* layers take fused kernels that have no forward-mode derivative."""
    policy = load_config(
        {"policy": {"backbone": "transformer", "horizon": 8, "n_action_steps": 4,
                    "transformer": {"d_model": 32, "n_layers": 2, "dropout": 0.0, **transformer}}}
    ).policy
    net = build_network(policy, obs_features({"k": (4,)}), 2).eval().requires_grad_(False)
    with torch.no_grad():
        _, metrics = MeanFlowObjective().loss(net, torch.rand(8, 8, 2) * 2 - 1, {"k": torch.randn(8, 2, 4)},
                                              generator=torch.Generator().manual_seed(0))
    assert metrics["loss"] > 0 and torch.backends.mha.get_fastpath_enabled()  # the switch is given back


@pytest.mark.parametrize("conditioning", ["cross_attention", "adaln"])
def test_the_target_pass_runs_without_dropout_and_gives_the_modes_back(conditioning):
    """With dropout on in training, the target is the deterministic network's derivative (as shortcut's
    targets are built without dropout); the network stays in training mode afterwards."""
    policy = load_config(
        {"policy": {"backbone": "transformer", "horizon": 8, "n_action_steps": 4,
                    "transformer": {"d_model": 32, "n_layers": 2, "dropout": 0.5, "conditioning": conditioning}}}
    ).policy
    torch.manual_seed(0)
    net = build_network(policy, obs_features({"k": (4,)}), 2).train()
    for p in net.parameters():  # adaLN-Zero's zero-initialised layers get weights: dropout must be able to show
        if not p.any():
            nn.init.normal_(p, std=0.1)
    x_t, v = torch.randn(4, 8, 2), torch.randn(4, 8, 2)
    t, d = torch.tensor([0.1, 0.2, 0.3, 0.4]), torch.tensor([0.5, 0.3, 0.2, 0.1])
    cond = net.encode({"k": torch.randn(4, 2, 4)}).detach()
    obj = MeanFlowObjective()
    with torch.no_grad():  # the check is not vacuous: in training mode dropout changes the network's output
        assert (net(x_t, t, d, cond) - net(x_t, t, d, cond)).abs().max() > 1e-4
    first, second = obj.interval_target(net, x_t, t, d, v, cond), obj.interval_target(net, x_t, t, d, v, cond)
    torch.testing.assert_close(first, second)  # no dropout mask: the same target twice
    assert all(m.training for m in net.modules())
    net.eval()
    torch.testing.assert_close(first, obj.interval_target(net, x_t, t, d, v, cond))
