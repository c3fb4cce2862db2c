"""Run settings are checked when the config is loaded: a bad value fails in a second, naming its key,
instead of after the demonstrations are made or the run has trained."""

import pytest

from shortcut_policy.config import load_config


@pytest.mark.parametrize(
    "override, message",
    [
        ({"train": {"lr": 0}}, r"train.lr: expected > 0, got 0"),
        ({"train": {"weight_decay": -1e-6}}, r"train.weight_decay: expected >= 0"),
        ({"train": {"ema_max_decay": 1.0}}, r"train.ema_max_decay: expected a value in \[0, 1\), got 1.0"),
        ({"train": {"ema_power": 0}}, r"train.ema_power: expected > 0"),
        ({"train": {"eval_episodes": -1}}, r"train.eval_episodes: expected >= 0, got -1"),
        ({"train": {"eval_every": 100, "periodic_eval_episodes": 0}}, r"train.periodic_eval_episodes: expected >= 1"),
        ({"train": {"eval_steps": [1, 0]}}, r"train.eval_steps: expected step counts >= 1"),
        ({"policy": {"unet": {"kernel_size": 4}}}, r"policy.unet.kernel_size: expected an odd number >= 1, got 4"),
        ({"policy": {"unet": {"down_dims": [64, 12]}}}, r"policy.unet.down_dims: expected .* multiples of n_groups=8"),
        ({"policy": {"unet": {"down_dims": []}}}, r"policy.unet.down_dims: expected a non-empty list"),
        ({"policy": {"unet": {"embed_dim": 7}}}, r"policy.unet.embed_dim: expected an even number"),
        ({"policy": {"transformer": {"d_model": 30}}}, r"policy.transformer.d_model: expected an even multiple of n_heads=4"),
        ({"policy": {"transformer": {"n_layers": 0}}}, r"policy.transformer.n_layers: expected >= 1"),
        ({"policy": {"transformer": {"dropout": 1.0}}}, r"policy.transformer.dropout: expected a value in \[0, 1\)"),
    ],
)
def test_bad_run_settings_are_refused_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(override)


def test_the_shipped_defaults_pass_the_checks():
    config = load_config({})
    assert config.train.eval_steps is None and config.policy.unet.kernel_size == 5
    load_config({"policy": {"backbone": "transformer", "transformer": {"d_model": 18, "n_heads": 3}}})
