"""The image (DiT) path: model invariants, the paper's class-conditional objective options, metrics, data, smoke runs."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from shortcut_policy.config import ImageRunConfig, load_config
from shortcut_policy.image.data import load_digits, load_image_folder
from shortcut_policy.image.dit import DiT, patchify, unpatchify
from shortcut_policy.image.metrics import frechet_distance
from shortcut_policy.image.parity import image_parity
from shortcut_policy.image.trainer import ImageTrainer, generate, load_image_model, run_image
from shortcut_policy.models.adaln import AdaLNZeroBlock
from shortcut_policy.objectives import ShortcutConfig, ShortcutObjective, build_objective


def tiny_dit(randomize=True, **kw):
    torch.manual_seed(0)
    net = DiT(image_size=8, channels=1, num_classes=3, hidden=32, depth=2, heads=2, patch_size=2, **kw)
    if randomize:  # leave the zero init so that outputs depend on the inputs
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()


# ------------------------------------------------------------------ model
@pytest.mark.parametrize("shape,patch", [((2, 1, 8, 8), 2), ((3, 3, 12, 12), 4), ((1, 4, 6, 6), 1), ((2, 3, 16, 16), 2)])
def test_patchify_round_trip_is_exact(shape, patch):
    x = torch.randn(shape)
    tokens = patchify(x, patch)
    assert tokens.shape == (shape[0], (shape[2] // patch) * (shape[3] // patch), patch * patch * shape[1])
    assert torch.equal(unpatchify(tokens, patch, shape[1], shape[2], shape[3]), x)
    # the first token is the top-left patch, channels last
    assert torch.equal(tokens[0, 0].reshape(patch, patch, shape[1]), x[0, :, :patch, :patch].permute(1, 2, 0))


def test_adaln_zero_blocks_start_as_identity_and_the_dit_outputs_zero():
    torch.manual_seed(0)
    block = AdaLNZeroBlock(32, 4)
    x, c = torch.randn(5, 16, 32), torch.randn(5, 32)
    assert torch.equal(block(x, c), x)
    net = tiny_dit(randomize=False)
    out = net(torch.randn(4, 1, 8, 8), torch.rand(4), torch.randint(0, 8, (4,)), net.encode(torch.tensor([0, 1, 2, 3])))
    assert out.shape == (4, 1, 8, 8) and torch.count_nonzero(out) == 0


def test_dit_labels_are_validated():
    net = tiny_dit()
    with pytest.raises(ValueError, match="labels: expected classes 0..2"):
        net.encode(torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="labels: expected a 1D integer tensor"):
        net.encode(torch.zeros(2, 1))


# -------------------------------------------------------------- objective
def guidance_objective(**kw):
    return ShortcutObjective(ShortcutConfig(max_steps=8, sc_fraction=0.5, cfg_scale=3.0, **kw))


def test_cfg_target_switch_changes_only_the_finest_self_consistency_rows():
    net = tiny_dit()
    x1 = torch.randn(64, 1, 8, 8)
    cond = net.encode(torch.randint(0, 3, (64,)))
    out = {}
    for cfg_target in (False, True):
        obj = guidance_objective(cfg_target=cfg_target)
        x0 = torch.randn(x1.shape, generator=torch.Generator().manual_seed(1))
        out[cfg_target] = obj.make_targets(x1, x0, net, cond, torch.Generator().manual_seed(2))
    (xt_a, t_a, d_a, v_a, n_sc), (xt_b, t_b, d_b, v_b, _) = out[False], out[True]
    assert torch.equal(xt_a, xt_b) and torch.equal(t_a, t_b) and torch.equal(d_a, d_b)
    finest_sc = torch.zeros(64, dtype=torch.bool)
    finest_sc[:n_sc] = d_a[:n_sc] == 2 / obj.config.max_steps  # the finest bootstrap level
    assert finest_sc.sum() >= 3
    changed = (v_a != v_b).flatten(1).any(1)
    assert torch.equal(changed, finest_sc)  # exactly those rows differ
    assert torch.equal(v_a[~finest_sc], v_b[~finest_sc])


class Spy(torch.nn.Module):
    """Wraps a denoiser and records the batch of every call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def encode(self, labels):
        return self.net.encode(labels)

    def null_cond(self, cond):
        return self.net.null_cond(cond)

    def forward(self, x, t, d, cond):
        self.calls.append((x.shape[0], d.clone(), cond.clone()))
        return self.net(x, t, d, cond)


def test_label_dropout_touches_only_flow_rows():
    spy = Spy(tiny_dit())
    obj = ShortcutObjective(ShortcutConfig(max_steps=8, sc_fraction=0.5, cond_drop_prob=0.5))
    labels = torch.randint(0, 3, (64,))
    obj.loss(spy, torch.randn(64, 1, 8, 8), labels, generator=torch.Generator().manual_seed(0))
    _, _, cond = spy.calls[-1]  # the prediction call (targets come first)
    n_sc = obj.split(64)
    real, null = spy.encode(labels), spy.null_cond(spy.encode(labels))
    is_null = (cond == null).all(1)
    assert torch.equal(cond[:n_sc], real[:n_sc])  # self-consistency rows keep their labels
    assert 5 < is_null[n_sc:].sum() < 27  # about half the 32 flow rows dropped
    assert torch.equal(cond[n_sc:][~is_null[n_sc:]], real[n_sc:][~is_null[n_sc:]])


@pytest.mark.parametrize("name", ["shortcut", "flow_matching"])
def test_guidance_at_sampling_only_from_cfg_min_steps(name):
    spy = Spy(tiny_dit())
    obj = build_objective({"name": name, "cfg_scale": 2.0, "cfg_min_steps": 8, **({"max_steps": 8} if name == "shortcut" else {})})
    cond = spy.encode(torch.tensor([0, 1, 2]))
    obj.sample(spy, cond, (1, 8, 8), 4)
    assert [b for b, _, _ in spy.calls] == [3] * 4  # unguided: one plain call per step
    spy.calls.clear()
    obj.sample(spy, cond, (1, 8, 8), 8)
    assert [b for b, _, _ in spy.calls] == [6] * 8  # guided: conditional and null halves in one call per step


def test_guidance_options_need_a_class_conditional_denoiser():
    from shortcut_policy.features import obs_features
    from shortcut_policy.models.network import build_network

    policy = load_config({"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}}).policy
    net = build_network(policy, obs_features({"keypoint": (18,)}), 2)
    obj = ShortcutObjective(ShortcutConfig(cond_drop_prob=0.1))
    with pytest.raises(ValueError, match="objective.cond_drop_prob: needs a denoiser with a null condition"):
        obj.loss(net, torch.randn(8, 16, 2), {"keypoint": torch.randn(8, 2, 18)})
    with pytest.raises(ValueError, match="objective.cfg_scale: expected >= 0"):
        ShortcutConfig(cfg_scale=-1.0)


# ---------------------------------------------------------------- metrics
def test_frechet_distance_matches_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + np.eye(6)
    mu = rng.normal(size=6)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # diagonal covariances: sum (sqrt(s1) - sqrt(s2))^2 plus the squared mean distance
    s1, s2 = rng.uniform(0.5, 2, 6), rng.uniform(0.5, 2, 6)
    expected = np.sum((mu - 1) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu, np.diag(s1), np.ones(6), np.diag(s2)) == pytest.approx(expected, rel=1e-9)
    # general covariances against scipy's matrix square root
    from scipy.linalg import sqrtm

    b = rng.normal(size=(6, 6))
    cov2 = b @ b.T + 0.1 * np.eye(6)
    reference = np.sum(mu**2) + np.trace(cov + cov2 - 2 * sqrtm(cov @ cov2).real)
    assert frechet_distance(mu, cov, np.zeros(6), cov2) == pytest.approx(reference, rel=1e-7)


# ------------------------------------------------------------------- data
def test_digits_load_offline_split_by_class():
    data = load_digits(image_size=16, test_fraction=0.2, seed=0)
    assert data.shape == (1, 16, 16) and data.num_classes == 10
    assert len(data.train_images) + len(data.test_images) == 1797
    assert data.train_images.min() >= -1 and data.train_images.max() <= 1
    assert set(data.test_labels.tolist()) == set(range(10))


def test_image_folder_loader_resizes_and_validates(tmp_path):
    rng = np.random.default_rng(0)
    for cls, size in (("cats", (20, 30)), ("dogs", (9, 9))):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_image_folder(tmp_path, image_size=8, channels=3, test_fraction=0.34)
    assert data.class_names == ["cats", "dogs"] and data.shape == (3, 8, 8)
    assert len(data.train_images) == 4 and len(data.test_images) == 2
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_image_folder(tmp_path, image_size=8)
    with pytest.raises(FileNotFoundError, match="dataset.root"):
        load_image_folder(tmp_path / "missing", image_size=8)


# ------------------------------------------------------------ smoke runs
SMOKE = {
    "model": {"hidden": 32, "depth": 2, "heads": 2},
    "train": {"num_steps": 12, "batch_size": 32, "warmup_steps": 2, "log_every": 4, "val_every": 6, "checkpoint_every": 6},
    "eval": {"steps": [1, 4], "samples_per_class": 4, "grid_per_class": 2, "classifier_epochs": 1},
}


def test_image_training_smoke_samples_at_1_and_4_steps(tmp_path):
    config = load_config({**SMOKE, "objective": {"name": "shortcut", "sc_target": "ema", "cond_drop_prob": 0.1,
                                                 "cfg_scale": 1.5, "cfg_target": True}}, ImageRunConfig)
    paths = run_image(config, tmp_path / "run", progress=False)
    report = json.loads(paths["json"].read_text())
    assert [r["steps"] for r in report["rows"]] == [1, 4]
    for row in report["rows"]:
        assert np.isfinite(row["frechet_distance"]) and 0 <= row["class_accuracy"] <= 1 and not row["guided"]
    assert (tmp_path / "run" / "eval" / "grids" / "steps_004.png").stat().st_size > 0
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 12 and "val_loss" in log[-1] and log[-1]["loss_sc"] > 0

    net, objective, loaded, meta = load_image_model(tmp_path / "run")
    assert loaded == config and meta["class_names"] == [str(i) for i in range(10)]
    labels = torch.tensor([0, 5, 9])
    a, b = generate(net, objective, labels, steps=1, seed=3), generate(net, objective, labels, steps=1, seed=3)
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)


def test_eval_steps_the_objective_cannot_sample_with_fail_before_training(tmp_path):
    config = load_config({**SMOKE, "objective": {"name": "shortcut", "max_steps": 4},
                          "eval": {**SMOKE["eval"], "steps": [1, 8]}}, ImageRunConfig)
    with pytest.raises(ValueError, match=r"eval.steps: expected a power of two from 1 to 4 .*got 8"):
        ImageTrainer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_image_parity_checks_every_method_before_the_first_trains(tmp_path):
    base = load_config({**SMOKE, "eval": {**SMOKE["eval"], "steps": [1, 8]}}, ImageRunConfig)
    methods = {"flow_matching": {"name": "flow_matching"}, "shortcut": {"name": "shortcut", "max_steps": 4}}
    with pytest.raises(ValueError, match=r"objectives.shortcut: eval.steps: expected a power of two from 1 to 4 .*got 8"):
        image_parity(base, methods, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_image_parity_writes_one_table_and_reuses_finished_runs(tmp_path, capsys):
    base = load_config({**SMOKE, "train": {**SMOKE["train"], "num_steps": 4}, "eval": {**SMOKE["eval"], "steps": [1]}},
                       ImageRunConfig)
    objectives = {"shortcut": {"name": "shortcut"}, "flow_matching": {"name": "flow_matching"}}
    paths = image_parity(base, objectives, tmp_path, progress=False)
    table = paths["markdown"].read_text()
    assert "| shortcut | 1 |" in table and "| flow_matching | 1 |" in table
    assert set(json.loads(paths["json"].read_text())) == {"shortcut", "flow_matching"}
    assert paths["plot"].stat().st_size > 0
    capsys.readouterr()
    image_parity(base, objectives, tmp_path, progress=False)
    assert capsys.readouterr().out.count("reusing the finished run") == 2
    image_parity(base, {"shortcut": objectives["shortcut"]}, tmp_path, retrain=True, progress=False)  # its own run folder
    assert "reusing" not in capsys.readouterr().out


@pytest.mark.slow
def test_dit_b_builds_and_runs_one_training_step(tmp_path):
    config = load_config({"model": {"hidden": 768, "depth": 12, "heads": 12, "patch_size": 2},
                          "train": {"batch_size": 4, "num_steps": 1}}, ImageRunConfig)
    trainer = ImageTrainer(config, tmp_path, progress=False)
    n_params = sum(p.numel() for p in trainer.network.parameters())
    # DiT-B/2 is about 130M parameters; our t and d embedders (sinusoids of the full width, then a 4x MLP) add 9.4M
    assert 125e6 < n_params < 140e6
    before = trainer.network.final.linear.weight.clone()  # zero at init; the only layer with a gradient at step 0
    metrics = trainer.train_step()
    assert np.isfinite(metrics["loss"]) and trainer.step == 1
    assert not torch.equal(before, trainer.network.final.linear.weight)


def test_a_local_torchscript_feature_extractor_replaces_the_classifier_features(tmp_path):
    from shortcut_policy.image.metrics import FeatureClassifier, FeatureSpace

    class Pool(torch.nn.Module):  # stands in for a TorchScript FID Inception: (B, 3, 299, 299) in [0, 255] -> (B, F)
        def forward(self, x):
            return torch.stack([x.mean((1, 2, 3)), x.amax((1, 2, 3)), x.shape[-1] * torch.ones(len(x))], dim=1)

    path = tmp_path / "features.pt"
    torch.jit.script(Pool()).save(str(path))
    space = FeatureSpace(FeatureClassifier(1, 10), path)
    images = torch.full((2, 1, 8, 8), -1.0)
    images[1] = 1.0
    feats = space(images)
    assert feats.shape == (2, 3) and "features.pt" in space.name
    assert feats[:, 0] == pytest.approx([0.0, 255.0]) and feats[0, 2] == 299  # RGB in [0, 255], resized to 299
    with pytest.raises(FileNotFoundError, match="eval.feature_extractor"):
        FeatureSpace(FeatureClassifier(1, 10), tmp_path / "missing.pt")
