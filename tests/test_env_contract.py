"""The environment contract is the only thing generic code knows about an environment.

A point mass reaching a goal is registered here, from the test suite, with its own scripted expert,
and goes through demos -> train -> evaluate without any generic file naming it. Generic code is also
read for the names of the one environment it used to know.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from conftest import readme_episode
from gymnasium import spaces

from shortcut_policy import load_policy, make_env
from shortcut_policy.config import load_config
from shortcut_policy.contract import PolicyContract
from shortcut_policy.data import MinMaxNormalizer, ReplayBuffer
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.envs import ENVS, EnvSpec, ObsSpec, get_env_spec, register_env, success_flag
from shortcut_policy.evaluation.env_pool import EnvPool
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.policy import Policy
from shortcut_policy.training.trainer import run

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 30
STEP = 0.2  # the largest move per step, per axis


class PointMass(gym.Env):
    """A point in [-1, 1]^2 moved by bounded velocity actions; success when within 0.1 of the goal."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_size: int | None = None) -> None:
        self.observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "goal": spaces.Box(-1, 1, (2,))})
        self.action_space = spaces.Box(-STEP, STEP, (2,))
        self.render_size = render_size or 32

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pos": self.pos.copy(), "goal": self.goal.copy()}

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos, self.goal = self.np_random.uniform(-0.9, 0.9, (2, 2))
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + np.clip(action, -STEP, STEP), -1, 1)
        distance = float(np.linalg.norm(self.pos - self.goal))
        reached = distance < 0.1
        return self._obs(), -distance, reached, False, {"reached": reached}

    def render(self) -> np.ndarray:
        frame = np.zeros((self.render_size, self.render_size, 3), np.uint8)
        for point, channel in ((self.pos, 0), (self.goal, 1)):
            x, y = ((point + 1) / 2 * (self.render_size - 1)).astype(int)
            frame[y, x, channel] = 255
        return frame


def make_point_mass(obs_keys=(), image_size=None, render_size=None) -> gym.Env:
    """The contract's ``make``; module level, so that rollout worker processes can be handed it."""
    return gym.wrappers.TimeLimit(PointMass(render_size), MAX_STEPS)


class GoalExpert:
    """Heads straight for the goal (it reads the observation, not the simulator)."""

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs, env) -> np.ndarray:
        return np.clip(obs["goal"] - obs["pos"], -STEP, STEP)


SPEC = EnvSpec(
    name="point_mass",
    make=make_point_mass,
    obs={"pos": ObsSpec((2,)), "goal": ObsSpec((2,))},
    action_dim=2,
    max_episode_steps=MAX_STEPS,
    success=success_flag("reached"),
    default_obs_keys=("pos", "goal"),
    make_expert=lambda seed: GoalExpert(),
)


@pytest.fixture(scope="module")
def point_mass():
    register_env(SPEC)
    yield SPEC
    ENVS.pop(SPEC.name)


@pytest.fixture(scope="module")
def trained(point_mass, tmp_path_factory):
    """demos -> train -> final evaluation, through the library's own entry points."""
    tmp = tmp_path_factory.mktemp("point_mass")
    store = generate_demos("point_mass", episodes=40, seed=1_000, out=tmp / "demos.zarr", progress=False)
    config = load_config({
        "env": {"name": "point_mass", "dataset": str(store)},
        "policy": {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "unet": {"down_dims": [32, 64]}},
        "train": {"num_steps": 400, "batch_size": 64, "warmup_steps": 20, "val_every": 200, "checkpoint_every": 200,
                  "log_every": 100, "eval_episodes": 20, "eval_steps": [1, 8]},
    })
    run(config, tmp / "run", progress=False)
    return store, tmp / "run"


@pytest.mark.slow
def test_demos_record_the_env_keys_and_success(trained):
    store, _ = trained
    buffer = ReplayBuffer.open(store)
    assert set(buffer.data) == {"pos", "goal", "action"}
    assert buffer.n_episodes == 40
    assert buffer.attrs["env"] == "point_mass" and buffer.attrs["expert_success_rate"] == 1.0


@pytest.mark.slow
def test_trains_and_evaluates_with_the_env_score(trained):
    _, run_dir = trained
    report = json.loads((run_dir / "eval" / "eval.json").read_text())
    assert report["env"] == "point_mass"
    assert [row["steps"] for row in report["rows"]] == [1, 8]
    for row in report["rows"]:
        # no reward shaping enters the score: this env is scored by success, so the two agree per episode
        for episode in row["per_episode"]:
            assert episode["score"] == float(episode["success"])
        assert row["score"] == row["success_rate"]
        # the executed actions' jerk, per episode (none for an episode of fewer than 3 actions) and its mean
        jerks = [e["jerk"] for e in row["per_episode"] if e["length"] >= 3]
        assert all(e["jerk"] is None for e in row["per_episode"] if e["length"] < 3)
        assert jerks and all(j >= 0 for j in jerks) and row["jerk"] == pytest.approx(sum(jerks) / len(jerks))
    # the expert succeeds on every demonstration; the policy must have learned to reach most goals
    assert max(row["success_rate"] for row in report["rows"]) >= 0.5, report["rows"]
    assert (run_dir / "eval" / "eval.png").is_file()
    assert sorted(p.name for p in (run_dir / "eval" / "videos").iterdir())


@pytest.mark.slow
def test_rollouts_in_worker_processes_match_in_process(trained):
    _, run_dir = trained
    policy = load_policy(run_dir)
    seeds = list(range(6))
    here = rollout(policy, "point_mass", seeds, steps=1, progress=False, workers=0, n_videos=1, video_size=16)
    apart = rollout(policy, "point_mass", seeds, steps=1, progress=False, workers=2, n_videos=1, video_size=16)
    assert [(r.seed, r.score, r.success, r.length) for r in here] == [(r.seed, r.score, r.success, r.length) for r in apart]
    assert len(here[0].frames) == here[0].length + 1 and here[0].frames[0].shape == (16, 16, 3)
    assert all(np.array_equal(a, b) for a, b in zip(here[0].frames, apart[0].frames))


@pytest.mark.slow
def test_an_act_loop_and_a_rollout_give_the_same_episode(trained):
    """Evaluation runs the ``act`` a robot calls: the README's loop and ``rollout`` agree action for action."""
    _, run_dir = trained
    policy = load_policy(run_dir)
    for seed, steps in [(3, 1), (4, 8)]:
        [episode] = rollout(policy, "point_mass", seeds=[seed], steps=steps, noise_seed=11, progress=False)
        actions, info = readme_episode(policy, make_env("point_mass"), seed, steps, noise_seed=11)
        np.testing.assert_array_equal(np.stack(episode.actions), actions)
        assert episode.length == len(actions) and episode.success == bool(info["reached"])


@pytest.mark.slow
def test_a_policy_loads_and_acts_where_its_env_was_never_registered(trained):
    """A robot's computer imports shortcut_policy and torch, not the test suite that registered point_mass."""
    _, run_dir = trained
    code = (
        "import sys, numpy as np, torch\n"
        "from shortcut_policy import load_policy\n"
        "from shortcut_policy.envs import ENVS\n"
        "assert 'point_mass' not in ENVS\n"
        "policy = load_policy(sys.argv[1])\n"
        "print(policy.contract.obs_keys, policy.contract.cameras, policy.act({'pos': np.zeros(2), 'goal': np.ones(2)}).shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "['pos', 'goal'] [] (2,)"


class HeadForGoal(Policy):
    """A stand-in policy whose chunks depend only on each episode's own observations, so how episodes are
    batched cannot change them; half speed and short chunks make episodes of different lengths. It acts
    through ``Policy.act`` (the history and queue per row); only its chunks are its own."""

    def __init__(self) -> None:
        config = load_config({"policy": {"horizon": 4, "n_action_steps": 3, "unet": {"down_dims": [8, 16], "embed_dim": 8}}})
        contract = PolicyContract(obs_features({"pos": (2,), "goal": (2,)}), "action", 2, config.policy, config.objective)
        network = build_network(config.policy, contract.obs, 2)
        normalizer = MinMaxNormalizer.fit({"action": np.array([[-1.0, -1.0], [1.0, 1.0]])})
        super().__init__(network, normalizer, build_objective(config.objective), contract)

    def predict_chunk(self, batch, steps=1, full=False, generator=None, validate=True):
        move = np.clip(batch["goal"][:, -1] - batch["pos"][:, -1], -STEP / 2, STEP / 2)  # (b, 2)
        return np.repeat(move[:, None], 3, axis=1)  # (b, 3, 2)


def test_rollouts_keep_at_most_rollout_envs_alive_and_give_each_seed_its_episode(point_mass):
    made = []

    def counting_make(**kwargs):
        made.append(kwargs)
        return make_point_mass(**kwargs)

    seeds = [3, 1, 4, 1, 5, 9, 2]
    every = rollout(HeadForGoal(), point_mass, seeds, steps=1, progress=False, workers=0, n_videos=1, video_size=16)
    capped_spec = dataclasses.replace(point_mass, make=counting_make, rollout_envs=2)
    capped = rollout(HeadForGoal(), capped_spec, seeds, steps=1, progress=False, workers=0, n_videos=1, video_size=16)
    apart = rollout(HeadForGoal(), dataclasses.replace(point_mass, rollout_envs=2), seeds, steps=1, progress=False, workers=2)
    def outcome(results):
        return [(r.seed, r.score, r.success, r.length) for r in results]

    assert len(made) == 2 and made[0]["render_size"] == 16 and "render_size" not in made[1]
    assert outcome(capped) == outcome(every) == outcome(apart)
    assert len({r.length for r in every}) > 1  # episodes end at different ticks: slots are refilled mid-rollout
    assert len(capped[0].frames) == capped[0].length + 1 and all(np.array_equal(a, b) for a, b in zip(capped[0].frames, every[0].frames))
    assert not any(r.frames for r in capped[1:])
    assert load_config({"env": {"name": "point_mass", "rollout_envs": 3}}).env.spec().rollout_envs == 3
    with pytest.raises(ValueError, match=r"env.rollout_envs: expected >= 0, got -1"):
        load_config({"env": {"name": "point_mass", "rollout_envs": -1}})


def test_env_pool_reports_a_failing_worker(point_mass):
    with EnvPool(make_point_mass, [{}, {}], workers=2) as pool:
        pool.reset({0: 0, 1: 1})
        with pytest.raises(RuntimeError, match="rollout worker 1 failed"):
            pool.step({1: "not an action"})
    with pytest.raises(ValueError, match="rollout_workers: expected an integer >= 0"):
        EnvPool(make_point_mass, [{}], workers=-1)


def test_make_env_and_spec_by_name(point_mass):
    env = make_env("point_mass", render_size=8)
    obs, _ = env.reset(seed=3)
    assert set(obs) == set(get_env_spec("point_mass").obs)
    assert env.render().shape == (8, 8, 3)
    with pytest.raises(ValueError, match="env.name: expected one of .*'point_mass'.*got 'nope'"):
        get_env_spec("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_env(EnvSpec(**{**SPEC.__dict__}))


def test_config_refuses_a_bad_task_and_names_a_missing_simulator(monkeypatch):
    with pytest.raises(ValueError, match=r"env.task: expected one of the metaworld env's tasks .*got 'push-v2'"):
        load_config({"env": {"name": "metaworld", "task": "push-v2"}})
    with pytest.raises(ValueError, match="env.task: the push_t env has no tasks to choose from, got 'push-v3'"):
        load_config({"env": {"name": "push_t", "task": "push-v3"}})
    # needs no simulator: runs where the metaworld extra is missing too
    assert load_config({"env": {"name": "metaworld"}}).env.task == "push-v3"  # the default task, recorded
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "metaworld" else real(name, *a))
    config = load_config({"env": {"name": "metaworld", "task": "reach-v3"}})  # a saved policy still loads
    with pytest.raises(ModuleNotFoundError, match=r"env.name=metaworld needs metaworld, which is not installed: "
                                                  r"pip install -e \"\.\[metaworld\]\""):
        config.env.spec()  # what demos, training and rollouts ask for first


def test_spec_refuses_keys_it_does_not_have():
    with pytest.raises(ValueError, match="env.obs_keys: 'vel' is not an observation of bad"):
        EnvSpec(name="bad", make=make_point_mass, obs={"pos": ObsSpec((2,))}, action_dim=2, max_episode_steps=5,
                success=success_flag("reached"), default_obs_keys=("vel",))
    with pytest.raises(ValueError, match="ObsSpec.type: expected 'low_dim' or 'rgb', got 'depth'"):
        ObsSpec((4, 4), "depth")


# ---------------------------------------------------------------------- generic code names no env
ENV_NAMES = ("push_t", "pusht", "is_success", "keypoint", "visualization_width", "coverage", "metaworld", "meta-world", "mujoco",
             "sawyer", "detour", "robosuite", "panda", "osc_pose")


def behaviour_literals(path: Path) -> list[tuple[int, str]]:
    """Names, attributes, strings and numbers a module's code uses, without its comments and docstrings."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value) for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.alias):
            found.append((node.lineno, node.name))
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and isinstance(node.value, (str, int)):
            found.append((node.lineno, str(node.value)))
    return found


def test_generic_code_names_no_environment():
    offenders = []
    for path in sorted((ROOT / "shortcut_policy").rglob("*.py")):
        for line, text in behaviour_literals(path):
            if any(name in text.lower() for name in ENV_NAMES) or text == "512":
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text}")
    assert not offenders, "\n".join(offenders)


class LoggingRecorder:
    """A toy ``demo_recorder``: records the point's position at each step beside the observations, and writes
    how many episodes it was handed into a file next to the store before making the store itself."""

    make_options: dict = {}

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def step_data(self, env) -> dict:
        return {"true_pos": env.unwrapped.pos.astype(np.float64)}

    def files(self, out: Path) -> list[Path]:
        return [Path(out).with_suffix(".log")]

    def finish(self, spec, env, episodes, out, keys, overwrite, progress):
        self.files(out)[0].write_text(f"{len(episodes)} episodes")
        if self.fail:
            raise RuntimeError("the recorder failed")
        assert all(e["true_pos"].dtype == np.float64 and np.allclose(e["true_pos"], e["pos"]) for e in episodes)
        buffer = ReplayBuffer()
        for episode in episodes:
            buffer.add_episode({k: episode[k] for k in [*keys, "action"]})
        return buffer


def test_an_env_s_own_way_into_the_store_is_one_hook_of_its_spec(point_mass, tmp_path):
    """Generic demonstration code knows nothing of robosuite's robomimic file: an env's ``demo_recorder`` adds
    per-step data, writes its files beside the store and makes the store; a failure leaves nothing behind."""
    spec = dataclasses.replace(point_mass, demo_recorder=LoggingRecorder())
    store = generate_demos(spec, episodes=3, seed=1_000, out=tmp_path / "demos.zarr", progress=False)
    assert (tmp_path / "demos.log").read_text() == "3 episodes"
    buffer = ReplayBuffer.open(store)
    assert buffer.n_episodes == 3 and set(buffer.data) == {"pos", "goal", "action"} and buffer.attrs["env"] == "point_mass"
    (tmp_path / "mine.log").write_text("a file of the user's")
    with pytest.raises(FileExistsError, match=r"out: .*mine.log already exists"):  # refused before any episode
        generate_demos(spec, episodes=3, seed=1_000, out=tmp_path / "mine.zarr", progress=False)
    assert (tmp_path / "mine.log").read_text() == "a file of the user's"
    failing = dataclasses.replace(point_mass, demo_recorder=LoggingRecorder(fail=True))
    with pytest.raises(RuntimeError, match="the recorder failed"):
        generate_demos(failing, episodes=2, seed=1_000, out=tmp_path / "other.zarr", progress=False)
    assert not (tmp_path / "other.zarr").exists() and not (tmp_path / "other.log").exists()
