"""Run settings are checked when the config is loaded: a bad value fails in a second, naming its key,
instead of after the demonstrations are made or the run has trained."""

import pytest

from shortcut_policy.config import ImageRunConfig, load_config
from shortcut_policy.models.network import BACKBONES


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train": {"lr": 0}}, r"train.lr: expected > 0, got 0"),
        ({"train": {"weight_decay": -1e-6}}, r"train.weight_decay: expected >= 0"),
        ({"train": {"ema_max_decay": 1.0}}, r"train.ema_max_decay: expected a value in \[0, 1\), got 1.0"),
        ({"train": {"ema_power": 0}}, r"train.ema_power: expected > 0"),
        ({"train": {"eval_episodes": -1}}, r"train.eval_episodes: expected >= 0, got -1"),
        ({"train": {"eval_every": 100, "periodic_eval_episodes": 0}}, r"train.periodic_eval_episodes: expected >= 1"),
        ({"train": {"eval_every": 100, "periodic_eval_steps": []}}, r"train.periodic_eval_steps: expected at least one step budget with eval_every=100, got \[\]"),
        ({"train": {"periodic_eval_steps": [1, 8, 1]}}, r"train.periodic_eval_steps: expected each step budget once, got \[1, 8, 1\]"),
        ({"train": {"curve_last_k": 0}}, r"train.curve_last_k: expected >= 1"),
        ({"train": {"eval_steps": [1, 0]}}, r"train.eval_steps: expected step counts >= 1"),
        ({"train": {"grad_clip": -1.0}}, r"train.grad_clip: expected >= 0"),
        ({"train": {"warmup_steps": -1}}, r"train.warmup_steps: expected >= 0"),
        ({"train": {"eval_every": -5}}, r"train.eval_every: expected >= 0"),
        ({"policy": {"unet": {"n_groups": 0}}}, r"policy.unet.n_groups: expected >= 1, got 0"),
        ({"policy": {"transformer": {"n_heads": 0}}}, r"policy.transformer.n_heads: expected >= 1"),
        ({"policy": {"transformer": {"n_cond_layers": -1}}}, r"policy.transformer.n_cond_layers: expected >= 0"),
        ({"policy": {"unet": {"kernel_size": 4}}}, r"policy.unet.kernel_size: expected an odd number >= 1, got 4"),
        ({"policy": {"unet": {"down_dims": [64, 12]}}}, r"policy.unet.down_dims: expected .* multiples of n_groups=8"),
        ({"policy": {"unet": {"down_dims": []}}}, r"policy.unet.down_dims: expected a non-empty list"),
        ({"policy": {"unet": {"embed_dim": 7}}}, r"policy.unet.embed_dim: expected an even number"),
        ({"policy": {"transformer": {"d_model": 30}}}, r"policy.transformer.d_model: expected an even multiple of n_heads=4"),
        ({"policy": {"transformer": {"n_layers": 0}}}, r"policy.transformer.n_layers: expected >= 1"),
        ({"policy": {"transformer": {"dropout": 1.0}}}, r"policy.transformer.dropout: expected a value in \[0, 1\)"),
        ({"policy": {"transformer": {"conditioning": "film"}}}, r"policy.transformer.conditioning: expected one of \['cross_attention', 'adaln'\], got 'film'"),
        ({"policy": {"transformer": {"conditioning": "adaln", "n_cond_layers": 1}}}, r"policy.transformer.n_cond_layers: adaln conditioning has no token encoder, expected 0, got 1"),
        ({"policy": {"embedding_scale": 0}}, r"policy.embedding_scale: expected a positive finite number, got 0"),
        ({"policy": {"embedding_scale": float("nan")}}, r"policy.embedding_scale: expected a positive finite number, got nan"),
        ({"policy": {"embedding_scale": float("inf")}}, r"policy.embedding_scale: expected a positive finite number, got inf"),
    ],
)
def test_bad_run_settings_are_refused_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(override)


def test_the_shipped_defaults_pass_the_checks():
    config = load_config({})
    assert config.train.eval_steps is None and config.policy.unet.kernel_size == 5
    load_config({"policy": {"backbone": "transformer", "transformer": {"d_model": 18, "n_heads": 3}}})


@pytest.mark.parametrize(
    "override, message",
    [
        ({"model": {"hidden": 30}}, r"model.hidden: expected a multiple of 4 .* and of heads=4, got 30"),
        ({"model": {"hidden": 128, "heads": 3}}, r"model.hidden: .*heads=3, got 128"),
        ({"model": {"depth": 0}}, r"model.depth: expected >= 1"),
        ({"model": {"patch_size": 3}}, r"model.patch_size: expected a divisor of dataset.image_size=8, got 3"),
    ],
)
def test_bad_image_model_settings_are_refused_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(override, ImageRunConfig)


def test_a_stored_config_from_before_eval_steps_defaulted_to_the_objective_still_loads():
    stored = {"objective": {"name": "shortcut"}, "train": {"eval_steps": [1, 128], "eval_episodes": 50}}
    assert load_config(stored).train.eval_steps == [1, 128]


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_t_and_d_are_embedded_at_the_run_s_scale(backbone):
    """Every objective embeds at 100 by default (MeanFlow needs it); ``policy.embedding_scale`` sets both
    embedders of either backbone, so the same weights then compute another function."""
    import torch

    from shortcut_policy.features import obs_features
    from shortcut_policy.models.network import build_network

    def net(**policy):
        torch.manual_seed(0)
        config = load_config({"objective": {"name": "shortcut"}, "policy": {"backbone": backbone, **policy}})
        return config.policy.embedding_scale, build_network(config.policy, obs_features({"k": (4,)}), 2)

    (default, a), (named, b) = net(), net(embedding_scale=1000.0)
    assert (default, named) == (100.0, 1000.0)
    with torch.no_grad():
        for p in a.parameters():  # off the zero-initialised output layers, so that the condition shows
            p.add_(0.1 * torch.randn_like(p))
    b.load_state_dict(a.state_dict())
    x, t, d = torch.randn(3, 16, 2), torch.rand(3), torch.rand(3) / 2
    with torch.no_grad():
        cond = a.encode({"k": torch.randn(3, 2, 4)})
        assert (a(x, t, d, cond) - b(x, t, d, cond)).abs().max() > 1e-3


def test_a_run_is_not_resumed_at_another_embedding_scale():
    from shortcut_policy.config import to_dict
    from shortcut_policy.training.resume import changes_from_saved

    saved = to_dict(load_config({"objective": {"name": "shortcut"}, "policy": {"embedding_scale": 1000.0}}))
    _, refused = changes_from_saved(saved, load_config({"objective": {"name": "shortcut"}}))
    assert refused == {"policy.embedding_scale": (1000.0, 100.0)}
