"""The task suite (``python -m shortcut_policy.suite``) on a point-mass env with two tasks in two groups:
demos per task, every task x method trained and evaluated, tables and plots per group, and a second
invocation that trains and evaluates nothing it has already done."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import pytest
from test_env_contract import MAX_STEPS, GoalExpert, PointMass
from test_env_contract import SPEC as POINT_MASS

from shortcut_policy.checkpoint import POLICY_FILE
from shortcut_policy.comparison.runs import EVAL_CACHE
from shortcut_policy.comparison.suite import run_suite
from shortcut_policy.config import SuiteConfig, load_config
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.envs import ENVS, register_env

TASK_GOALS = {"left": -0.5, "right": 0.5}  # the goal's x; its y is drawn


class PointMassTask(PointMass):
    """The point mass with the goal's x fixed by the task."""

    def __init__(self, task: str, render_size: int | None = None) -> None:
        super().__init__(render_size)
        self.goal_x = TASK_GOALS[task]

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed)
        self.goal[0] = self.goal_x
        return self._obs(), info


def make_point_mass_task(task="left", obs_keys=(), image_size=None, render_size=None, max_episode_steps=None) -> gym.Env:
    return gym.wrappers.TimeLimit(PointMassTask(task, render_size), max_episode_steps or MAX_STEPS)


def make_expert(seed=None, task="left"):
    return GoalExpert()


SPEC = dataclasses.replace(  # the contract test's point mass, with tasks
    POINT_MASS,
    name="point_mass_tasks",
    make=make_point_mass_task,
    make_expert=make_expert,
    tasks=tuple(TASK_GOALS),
    default_task="left",
    task_groups={"easy": ("left",), "hard": ("right",)},
)


@pytest.fixture(scope="module")
def tasked_env():
    register_env(SPEC)
    yield SPEC
    ENVS.pop(SPEC.name)


def suite_config(out, **extra) -> SuiteConfig:
    return load_config({
        "env": {"name": "point_mass_tasks", "demo_episodes": 10, "max_episode_steps": 20},
        "policy": {"horizon": 8, "n_obs_steps": 2, "n_action_steps": 4, "unet": {"down_dims": [16, 32]}},
        "train": {"num_steps": 30, "batch_size": 16, "warmup_steps": 5, "val_every": 30, "checkpoint_every": 30,
                  "log_every": 10},
        "methods": ["shortcut", "flow_matching"],
        "objectives": {"shortcut": {"name": "shortcut"}, "flow_matching": {"name": "flow_matching"}},
        "steps": {"shortcut": [1, 2], "flow_matching": [1]},
        "seeds": [0], "episodes": 3, "latency_calls": 4, "jobs": 1, "videos": 1, "out": str(out), **extra,
    }, SuiteConfig)


@pytest.fixture(scope="module")
def suite(tasked_env, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("suite")
    mp = pytest.MonkeyPatch()
    mp.setenv("SHORTCUT_POLICY_DATA", str(tmp / "datasets"))
    run_suite(suite_config(tmp / "out"), tmp / "out", progress=False)
    yield tmp
    mp.undo()


@pytest.mark.slow
def test_each_task_gets_its_own_demonstrations(suite):
    for task in TASK_GOALS:
        buffer = ReplayBuffer.open(suite / "datasets" / f"point_mass_tasks_{task}_expert.zarr")
        assert buffer.attrs["env"] == f"point_mass_tasks_{task}" and buffer.attrs["task"] == task
        assert buffer.n_episodes == 10
        goals = buffer.data["goal"][:]
        assert (goals[:, 0] == TASK_GOALS[task]).all()  # the task reached the env
        assert buffer.attrs["max_episode_steps"] == 20


def test_tables_rows_and_plots_per_task_and_group(suite):
    out = suite / "out"
    report = json.loads((out / "suite.json").read_text())
    assert set(report["tasks"]) == {"left", "right"}
    for rows in report["tasks"].values():
        assert [(r["method"], r["steps"]) for r in rows] == [("shortcut", 1), ("shortcut", 2), ("flow_matching", 1)]
        assert all(r["episodes"] == 3 and r["seeds"] == 1 for r in rows)
        assert all(r["act_median_ms"] > 0 for r in rows)  # measured once per method, carried to every task
    assert set(report["groups"]) == {"easy", "hard"}
    easy = {(r["method"], r["steps"]): r for r in report["groups"]["easy"]}
    left = {(r["method"], r["steps"]): r for r in report["tasks"]["left"]}
    assert easy["shortcut", 1]["success_rate"] == left["shortcut", 1]["success_rate"]  # a one-task group is its task
    assert easy["shortcut", 1]["tasks"] == ["left"]
    text = (out / "suite.md").read_text()
    assert "| easy (1) |" in text and "| hard (1) |" in text and "## Expert demonstrations" in text
    assert (out / "group_easy.png").is_file() and (out / "group_hard.png").is_file()
    for task in TASK_GOALS:  # one video per task, from the first method's first run at its fewest steps
        assert [p.name for p in (out / task / "videos").iterdir()] == ["steps001_seed0.mp4"]
    phases = [json.loads(line)["phase"] for line in (out / "timings.jsonl").read_text().splitlines()]
    assert phases == ["demos", "train", "evaluate"]


@pytest.mark.slow
def test_a_second_invocation_redoes_nothing_done(suite, capsys):
    out = suite / "out"
    runs = sorted(out.glob("*/runs/*"))
    assert len(runs) == 4
    before = {run: ((run / POLICY_FILE).stat().st_mtime_ns, (run / EVAL_CACHE).stat().st_mtime_ns) for run in runs}
    stale = out / "right" / "runs" / "flow_matching_seed0" / EVAL_CACHE
    stale.unlink()  # as if stopped while this run was being evaluated
    run_suite(suite_config(out), out, progress=False)
    printed = capsys.readouterr().out
    for run in runs:
        policy_mtime, cache_mtime = before[run]
        assert (run / POLICY_FILE).stat().st_mtime_ns == policy_mtime  # no run trained again
        if run / EVAL_CACHE != stale:
            assert (run / EVAL_CACHE).stat().st_mtime_ns == cache_mtime  # evaluated runs keep their rows
    assert stale.is_file()
    assert printed.count("rows reused") == 3
    assert len((out / "timings.jsonl").read_text().splitlines()) == 6
    # stopped after a run's first budget: only the budget left is rolled out again
    cache = out / "left" / "runs" / "shortcut_seed0" / EVAL_CACHE
    saved = json.loads(cache.read_text())
    assert sorted(saved["budgets"]) == ["1", "2"]
    row_1 = saved["budgets"]["1"]["row"]
    del saved["budgets"]["2"]
    cache.write_text(json.dumps(saved))
    run_suite(suite_config(out), out, progress=False)
    printed = capsys.readouterr().out
    assert printed.count("rows reused") == 4 and printed.count("evaluating ") == 1
    assert f"evaluating {cache.parent} at steps [2]" in printed
    resumed = json.loads(cache.read_text())["budgets"]
    assert sorted(resumed) == ["1", "2"] and resumed["1"]["row"] == row_1
    # other test episodes: every run evaluated again, none trained again
    run_suite(suite_config(out, episodes=4), out, progress=False)
    assert "rows reused" not in capsys.readouterr().out
    assert all((run / POLICY_FILE).stat().st_mtime_ns == before[run][0] for run in runs)
    assert json.loads((out / "suite.json").read_text())["tasks"]["left"][0]["episodes"] == 4


def test_runs_trained_otherwise_are_refused_not_reused(suite):
    out = suite / "out"
    changed = suite_config(out)
    changed.env.max_episode_steps = 25
    with pytest.raises(ValueError, match=r"trained with other values of env.max_episode_steps \(saved 20, asked 25\); "
                                         r"retrain=true trains the runs anew"):
        run_suite(changed, out, progress=False)
    changed = suite_config(out)
    changed.train.lr = 1e-3
    with pytest.raises(ValueError, match=r"other values of train.lr \(saved 0.0003, asked 0.001\)"):
        run_suite(changed, out, progress=False)
    changed = suite_config(out)
    changed.train.num_steps = 10
    with pytest.raises(ValueError, match=r"train.num_steps \(saved '30 \(trained\)', asked 10\)"):
        run_suite(changed, out, progress=False)


@pytest.mark.slow
def test_retrain_trains_and_evaluates_anew(suite, capsys):
    out = suite / "out"
    run = out / "left" / "runs" / "shortcut_seed0"
    before = (run / POLICY_FILE).stat().st_mtime_ns
    run_suite(suite_config(out, retrain=True), out, progress=False)
    assert (run / POLICY_FILE).stat().st_mtime_ns != before
    assert "rows reused" not in capsys.readouterr().out


def test_suite_config_refusals(tasked_env, tmp_path):
    with pytest.raises(ValueError, match=r"tasks: env.task: expected one of the point_mass_tasks env's tasks \['left', 'right'\], got 'up'"):
        suite_config(tmp_path, tasks=["left", "up"])
    with pytest.raises(ValueError, match="tasks: expected distinct tasks"):
        suite_config(tmp_path, tasks=["left", "left"])
    assert suite_config(tmp_path).tasks == ["left", "right"]  # []: every task of the env
    with pytest.raises(ValueError, match="env.name: the suite runs the tasks of an env; push_t has none"):
        load_config({"env": {"name": "push_t"}}, SuiteConfig)
    with pytest.raises(ValueError, match="checkpoints: the suite trains"):
        suite_config(tmp_path, checkpoints={"shortcut": ["run"], "flow_matching": []})
    with pytest.raises(ValueError, match="env.dataset: the suite makes .* one expert store per task; expected '', got 'mine.zarr'"):
        load_config({"env": {"name": "point_mass_tasks", "dataset": "mine.zarr"}}, SuiteConfig)
