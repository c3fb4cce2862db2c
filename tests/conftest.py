import json
import os

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def train_tiny(tmp_path):
    """``train_tiny(env, steps)``: a tiny U-Net policy trained ``steps`` steps on ``env`` (a config's env
    section, naming its store), then rolled out for one episode at 1 step; returns the eval report. The run
    is ``tmp_path / "run"``."""
    from shortcut_policy.config import load_config
    from shortcut_policy.training.trainer import run

    def train(env: dict, steps: int) -> dict:
        config = load_config({
            "env": env,
            "policy": {"unet": {"down_dims": [16, 32]}},
            "train": {"num_steps": steps, "batch_size": 8, "warmup_steps": 2, "val_every": steps, "checkpoint_every": steps,
                      "log_every": steps // 2, "eval_episodes": 1, "eval_steps": [1]},
        })
        run(config, tmp_path / "run", progress=False)
        return json.loads((tmp_path / "run" / "eval" / "eval.json").read_text())

    return train
