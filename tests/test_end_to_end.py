"""A small end-to-end run: expert demos -> store -> train -> checkpoint -> act -> rollout; and resume."""

import json

import numpy as np
import pytest
import torch

from shortcut_policy import load_policy, make_env
from shortcut_policy.checkpoint import load_tensors as read_tensors
from shortcut_policy.config import load_config
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.models.network import BACKBONES
from shortcut_policy.objectives import OBJECTIVES, build_objective
from shortcut_policy.training.trainer import Trainer, final_eval_steps, run

TINY = {"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "push_t.zarr"
    generate_demos("push_t", episodes=2, seed=100_000, out=path, progress=False)
    return path


def smoke_config(store, run_dir, objective=None, **train):
    """``objective`` goes through load_config, as a command's does."""
    return load_config(
        {
            **TINY,
            **({"objective": objective} if objective else {}),
            "env": {"dataset": str(store)},
            "train": {"num_steps": 30, "batch_size": 16, "warmup_steps": 5, "log_every": 10, "val_every": 15,
                      "checkpoint_every": 15, "eval_episodes": 1, "eval_steps": [1, 4], **train},
            "run_dir": str(run_dir),
        }
    )


def test_demo_store_layout_and_attributes(demo_store):
    buffer = ReplayBuffer.open(demo_store)
    assert set(buffer.keys) == {"state", "keypoint", "agent_pos", "action"}
    assert buffer.n_episodes == 2
    assert buffer.data["keypoint"].shape[1:] == (18,)
    assert np.array_equal(buffer.data["agent_pos"], buffer.data["state"][:, :2])
    attrs = buffer.attrs
    assert attrs["expert_success_rate"] > 0 and attrs["seconds"] > 0
    assert len(attrs["seeds_success"]) == 2


@pytest.mark.slow
def test_train_act_and_roll_out(demo_store, tmp_path):
    paths = run(smoke_config(demo_store, tmp_path / "run"), tmp_path / "run", progress=False)
    report = json.loads(paths["json"].read_text())
    assert [r["steps"] for r in report["rows"]] == [1, 4]
    for row in report["rows"]:
        assert row["episodes"] == 1 and 0 <= row["score"] <= 1 and 1 <= row["mean_length"] <= 300
        assert row["replan_median_ms"] > 0
    assert paths["plot"].stat().st_size > 0
    assert len(list((tmp_path / "run" / "eval" / "videos").glob("*.mp4"))) == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 30 and "val_loss" in log[-1]

    policy = load_policy(paths["checkpoint"])
    env = make_env("push_t")
    obs, _ = env.reset(seed=0)
    for steps in (1, 4):
        policy.reset()
        action = policy.act(obs, steps=steps)
        assert action.shape == (2,) and np.isfinite(action).all()
        obs, *_ = env.step(action)


@pytest.mark.slow
def test_resume_continues_a_killed_run_exactly(demo_store, tmp_path, monkeypatch):
    straight = Trainer(smoke_config(demo_store, tmp_path / "a", eval_episodes=0), tmp_path / "a", progress=False)
    straight.fit()

    killed_dir = tmp_path / "b"
    killed = Trainer(smoke_config(demo_store, killed_dir, eval_episodes=0), killed_dir, progress=False)
    original = Trainer.train_step

    def dying_step(self):
        if self.step == 20:  # last checkpoint was at step 15
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    monkeypatch.setattr(Trainer, "train_step", original)

    resumed = Trainer(smoke_config(demo_store, killed_dir, eval_episodes=0, resume=True), killed_dir, progress=False)
    assert resumed.step == 15
    resumed.fit()
    a, _ = read_tensors(tmp_path / "a" / "policy.safetensors")
    b, _ = read_tensors(killed_dir / "policy.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)

    def records(run_dir):
        return [(r["step"], r.get("loss"), r.get("val_loss")) for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]

    # the killed run logged step 20 after its last checkpoint (15): the resumed run logs it once, anew
    assert [step for step, *_ in records(tmp_path / "a")] == [10, 15, 20, 30]
    assert records(killed_dir) == records(tmp_path / "a")
    # a finished run resumed (as a comparison reuses it) trains nothing and keeps its whole log
    finished = records(killed_dir)
    Trainer(smoke_config(demo_store, killed_dir, eval_episodes=0, resume=True), killed_dir, progress=False).fit()
    assert records(killed_dir) == finished
    # training a run folder anew (no resume) starts its log anew, and drops the earlier run's resumable
    # state at once: stopped before its first checkpoint, it must not resume the earlier run
    anew = Trainer(smoke_config(demo_store, tmp_path / "a", eval_episodes=0), tmp_path / "a", progress=False)

    def stop_at_once(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_step", stop_at_once)
    with pytest.raises(KeyboardInterrupt):
        anew.fit()
    monkeypatch.setattr(Trainer, "train_step", original)
    assert records(tmp_path / "a") == [] and not (tmp_path / "a" / "train_state.safetensors").exists()
    Trainer(smoke_config(demo_store, tmp_path / "a", eval_episodes=0), tmp_path / "a", progress=False).fit()
    assert [step for step, *_ in records(tmp_path / "a")] == [10, 15, 20, 30]


def test_resume_refuses_a_run_saved_with_other_objective_options(demo_store, tmp_path):
    """A run begun with a quarter self-consistent (the old default) is not finished with an eighth."""
    run_dir = tmp_path / "run"
    short = {"eval_episodes": 0, "num_steps": 2, "checkpoint_every": 2, "val_every": 2, "warmup_steps": 1}
    quarter = smoke_config(demo_store, run_dir, {"name": "shortcut", "sc_fraction": 0.25}, **short)
    Trainer(quarter, run_dir, progress=False).fit()
    default = smoke_config(demo_store, run_dir, {"name": "shortcut"}, **{**short, "num_steps": 4, "resume": True})  # its defaults
    with pytest.raises(ValueError, match=r"train.resume: .* was trained with other values of objective.sc_fraction \(saved 0.25, asked 0.125\)"):
        Trainer(default, run_dir, progress=False)
    quarter.train.resume = True  # the saved options resume as before
    assert Trainer(quarter, run_dir, progress=False).step == 2


@pytest.mark.parametrize(
    "objective, expected",
    [({"name": "shortcut"}, [1, 128]), ({"name": "shortcut", "max_steps": 1}, [1]),
     ({"name": "flow_matching"}, [1, 128]), ({"name": "ddpm"}, [1, 100])],
)
def test_default_final_evaluation_fits_the_objective(objective, expected):
    """train.eval_steps left unset evaluates at the objective's fewest and most steps: DDPM has no 128."""
    assert final_eval_steps(None, build_objective(objective)) == expected


def test_final_evaluation_steps_are_checked_before_training(demo_store, tmp_path):
    """DDPM cannot sample with 128 steps: the run fails at once, naming the field, and makes nothing;
    a run that evaluates nothing (as compare trains its runs) has nothing to refuse."""
    config = smoke_config(demo_store, tmp_path / "run", {"name": "ddpm"}, eval_steps=[1, 128])
    with pytest.raises(ValueError, match=r"train.eval_steps: expected an integer from 1 to 100 \(ddpm.*got 128$"):
        Trainer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    config.train.eval_episodes = 0
    assert Trainer(config, tmp_path / "run", progress=False).eval_steps == []


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("backbone", [*BACKBONES, "transformer_adaln"])  # transformer: cross-attention
def test_every_objective_and_backbone_trains_and_acts(demo_store, tmp_path, objective, backbone):
    conditioning = "adaln" if backbone == "transformer_adaln" else "cross_attention"
    config = load_config(
        {
            "env": {"dataset": str(demo_store)},
            "policy": {"backbone": backbone.removesuffix("_adaln"), "unet": {"down_dims": [16, 32], "embed_dim": 16},
                       "transformer": {"d_model": 32, "n_layers": 1, "conditioning": conditioning}},
            "objective": {"name": objective},
            "train": {"num_steps": 4, "batch_size": 8, "warmup_steps": 1, "val_every": 4, "checkpoint_every": 4, "eval_episodes": 0},
        }
    )
    Trainer(config, tmp_path, progress=False).fit()
    policy = load_policy(tmp_path)
    assert policy.objective.name == objective  # the checkpoint records which objective made it
    assert policy.contract.policy.transformer.conditioning == conditioning  # and how the network is built
    env = make_env("push_t")
    obs, _ = env.reset(seed=0)
    for steps in policy.objective.valid_steps()[:2] + policy.objective.valid_steps()[-1:]:
        policy.reset()
        assert np.isfinite(policy.act(obs, steps=steps)).all()


def dp_layout_store(demo_store, path, keypoints):
    """The demo store with its keypoints rewritten by ``keypoints`` (N, 18) -> (N, ...)."""
    source = ReplayBuffer.open(demo_store)
    buffer = ReplayBuffer()
    for i in range(source.n_episodes):
        episode = source.get_episode(i)
        buffer.add_episode({**episode, "keypoint": keypoints(episode["keypoint"])})
    return buffer.save(path)


def test_store_with_2d_keypoints_trains_and_acts(demo_store, tmp_path):
    """Diffusion Policy's own Push-T store holds keypoints as (N, 9, 2): the encoder flattens each frame.
    (Here the layout only: this store's keypoints are the demo store's, reshaped.)"""
    store = dp_layout_store(demo_store, tmp_path / "dp_layout.zarr", lambda k: k.reshape(-1, 9, 2))
    config = load_config(
        {**TINY, "env": {"dataset": str(store)},
         "train": {"num_steps": 4, "batch_size": 8, "warmup_steps": 1, "val_every": 4, "checkpoint_every": 4, "eval_episodes": 0}}
    )
    Trainer(config, tmp_path / "run", progress=False).fit()
    policy = load_policy(tmp_path / "run")
    obs, _ = make_env("push_t").reset(seed=0)
    action = policy.act({"keypoint": obs["keypoint"].reshape(9, 2)}, steps=1)
    assert action.shape == (2,) and np.isfinite(action).all()
    with pytest.raises(ValueError, match=r"obs\['keypoint'\]: expected shape \(9, 2\), got \(18,\)"):
        policy.act({"keypoint": obs["keypoint"]}, steps=1)


def test_store_the_env_cannot_feed_is_refused_before_training(demo_store, tmp_path):
    """Same size is not the same observation (Diffusion Policy's 9 block keypoints vs this env's 8 T corners
    and the agent): a run that will roll out refuses such a store before training, and leaves no folder."""
    store = dp_layout_store(demo_store, tmp_path / "dp_layout.zarr", lambda k: k.reshape(-1, 9, 2))
    config = load_config(
        {**TINY, "env": {"dataset": str(store)},
         "train": {"num_steps": 4, "batch_size": 8, "warmup_steps": 1, "val_every": 4, "checkpoint_every": 4,
                   "eval_episodes": 1, "eval_steps": [1]}}
    )
    with pytest.raises(ValueError, match=r"env.dataset .*dp_layout.zarr: obs\['keypoint'\]: the policy observes shape "
                                         r"\(9, 2\) \(its training data\), the push_t env gives \(18,\).*train.eval_episodes=0"):
        Trainer(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    config.train.eval_episodes = 0  # nothing rolls out: such a store trains
    Trainer(config, tmp_path / "run", progress=False).fit()
    policy = load_policy(tmp_path / "run")
    with pytest.raises(ValueError, match=r"cannot be rolled out in this env"):
        rollout(policy, "push_t", seeds=[0], steps=1, progress=False)


def test_state_only_policy_trains_and_rolls_out(demo_store, tmp_path):
    """env.obs_keys=[state]: how a store written by Diffusion Policy trains and evaluates in this env."""
    config = load_config(
        {**TINY, "env": {"dataset": str(demo_store), "obs_keys": ["state"]},
         "train": {"num_steps": 4, "batch_size": 8, "warmup_steps": 1, "val_every": 4, "checkpoint_every": 4, "eval_episodes": 0}}
    )
    Trainer(config, tmp_path / "run", progress=False).fit()
    policy = load_policy(tmp_path / "run")
    assert policy.obs_shapes == {"state": (5,)}
    [episode] = rollout(policy, "push_t", seeds=[0], steps=1, progress=False)
    assert 1 <= episode.length <= 300 and 0 <= episode.score <= 1


def test_low_dim_keys_are_flattened_per_frame():
    from shortcut_policy.features import obs_features
    from shortcut_policy.models.obs_encoder import ObsEncoder

    with pytest.raises(ValueError, match=r"obs_keys: expected 1-D or 2-D low-dim observations or \(H, W, 3\) images, got 'grid' with shape \(2, 3, 4, 5\)"):
        ObsEncoder(obs_features({"keypoint": (18,), "grid": (2, 3, 4, 5)}), n_obs_steps=2)
    encoder = ObsEncoder(obs_features({"keypoint": (9, 2), "state": (5,)}), n_obs_steps=2)
    obs = {"keypoint": torch.arange(36.0).reshape(1, 2, 9, 2), "state": -torch.ones(1, 2, 5)}
    out = encoder(obs)
    assert encoder.out_dim == 46 and out.shape == (1, 46)
    # frame-major: frame 0's keypoints then its state, then frame 1
    assert torch.equal(out[0, :18], torch.arange(18.0)) and torch.equal(out[0, 18:23], -torch.ones(5))
    assert torch.equal(out[0, 23:41], torch.arange(18.0, 36.0))
