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


@pytest.fixture(scope="session")
def chunk_of_4_policy(tmp_path_factory):
    """A tiny Push-T policy of two training steps that executes chunks of 4 actions (horizon 8, 2 observed
    frames), and its env with 40-tick episodes: for what depends on how chunks are executed, not on quality."""
    from shortcut_policy.config import load_config
    from shortcut_policy.data.demos import generate_demos
    from shortcut_policy.policy import load_policy
    from shortcut_policy.training.trainer import run

    tmp = tmp_path_factory.mktemp("chunk_of_4")
    store = generate_demos("push_t", episodes=1, seed=100_000, out=tmp / "demos.zarr", progress=False)
    config = load_config({"env": {"dataset": str(store), "max_episode_steps": 40},
                          "policy": {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 4,
                                     "unet": {"down_dims": [16, 32], "embed_dim": 16}},
                          "train": {"num_steps": 2, "batch_size": 8, "warmup_steps": 1, "eval_episodes": 0}})
    run(config, tmp / "run", progress=False)
    return load_policy(tmp / "run"), config.env.spec()


def readme_episode(policy, env, seed: int, steps: int, noise_seed: int = 0):
    """One episode through the README's control loop (``policy.reset``, then ``act`` every tick until the
    episode ends): the actions given to the env (T, A) and the last step's ``info``."""
    import numpy as np

    obs, info = env.reset(seed=seed)
    policy.reset(seed=noise_seed)
    actions, done = [], False
    while not done:
        action = policy.act(obs, steps=steps)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        done = terminated or truncated
    return np.stack(actions), info
