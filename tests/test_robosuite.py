"""robosuite behind the env contract, in robomimic's form: observation keys and sizes per task, seeded
starts, absolute actions that replay what the delta actions did, and a policy trained on a tiny imported
store that rolls out."""

from __future__ import annotations

import numpy as np
import pytest

from shortcut_policy.config import load_config
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.data.robomimic import write_robomimic
from shortcut_policy.envs import get_env_spec
from shortcut_policy.import_robomimic import import_file
from shortcut_policy.training.trainer import run

pytest.importorskip("robosuite")  # the test extra installs it; CI runs these

from shortcut_policy.envs.robosuite.actions import AbsoluteActionConverter, matrix_to_rot6d, rot6d_to_matrix  # noqa: E402
from shortcut_policy.envs.robosuite.env import env_args_for  # noqa: E402

KEYS = ["object", "robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos"]


def record(task: str = "lift", steps: int = 25, seed: int = 0) -> dict:
    """A delta-action episode of smooth random motion, with the simulator state before each step."""
    env = get_env_spec("robosuite").configure(task).make(end_on_success=False)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    episode = {"actions": [], "states": [], "obs": {k: [] for k in KEYS}}
    for i in range(steps):
        action = np.clip(rng.normal(0.0, 0.5, 7), -1, 1)
        action[6] = 1.0 if i > steps // 2 else -1.0
        episode["states"].append(env.sim.get_state().flatten())
        episode["actions"].append(action)
        for k in KEYS:
            episode["obs"][k].append(obs[k])
        obs, *_ = env.step(action)
    final_state = env.sim.get_state().flatten()
    env.close()
    out = {"actions": np.array(episode["actions"]), "states": np.array(episode["states"]),
           "obs": {k: np.array(v) for k, v in episode["obs"].items()}}
    return out, final_state


@pytest.mark.parametrize("task, object_dim", [("lift", 10), ("can", 14), ("square", 14)])
def test_observations_are_robomimics_per_task(task, object_dim):
    spec = get_env_spec("robosuite").configure(task)
    assert spec.obs["object"].shape == (object_dim,) and spec.action_dim == 7
    env = spec.make(obs_keys=KEYS)
    obs, _ = env.reset(seed=3)
    assert {k: v.shape for k, v in obs.items()} == {k: spec.obs[k].shape for k in KEYS}
    rs = env.unwrapped.robosuite_env  # the object's position first (robomimic's order), and not zeros at reset
    body = rs.cube_body_id if task == "lift" else rs.obj_body_id["Can" if task == "can" else "SquareNut"]
    assert np.allclose(obs["object"][:3], rs.sim.data.body_xpos[body]) and np.abs(obs["object"][:3]).sum() > 0.5
    again, _ = env.reset(seed=3)
    other, _ = env.reset(seed=4)
    assert all(np.array_equal(obs[k], again[k]) for k in KEYS)  # the same seed, the same start
    assert not np.allclose(obs["object"], other["object"])
    env.close()


@pytest.mark.parametrize("task", ["lift", "square"])
def test_an_episode_depends_on_its_seed_alone(task):
    """The same seed and actions give the same episode in a fresh env and in one that ran another episode
    first (rollout workers see different histories than one process does)."""
    actions = np.random.default_rng(0).uniform(-1, 1, (30, 7))

    def episode(env, seed):
        obs, _ = env.reset(seed=seed)
        out = [obs["object"]]
        for action in actions:
            obs, *_ = env.step(action)
            out += [obs["object"], obs["robot0_eef_pos"], obs["robot0_gripper_qpos"]]
        return np.concatenate(out)

    spec = get_env_spec("robosuite").configure(task)
    used, fresh = spec.make(end_on_success=False), spec.make(end_on_success=False)
    episode(used, 5)
    assert np.array_equal(episode(used, 3), episode(fresh, 3))
    used.close()
    fresh.close()


def test_camera_observations_are_uint8_and_right_side_up():
    env = get_env_spec("robosuite").configure("lift").make(obs_keys=KEYS + ["agentview_image"])
    obs, _ = env.reset(seed=0)
    image = obs["agentview_image"]
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8
    # the agent view looks down at the table from above the robot's far side: the top rows show the
    # robot and the room behind, the bottom rows the bright table
    assert image[-10:].mean() > image[:10].mean()
    env.close()


def test_rot6d_round_trip():
    from scipy.spatial.transform import Rotation

    matrices = Rotation.random(20, random_state=0).as_matrix()
    assert np.allclose(rot6d_to_matrix(matrix_to_rot6d(matrices)), matrices, atol=1e-12)
    noisy = matrix_to_rot6d(matrices) * 1.7 + 1e-3  # a policy's imprecise output is still a rotation
    result = rot6d_to_matrix(noisy)
    assert np.allclose(result @ np.swapaxes(result, -1, -2), np.eye(3), atol=1e-9)


def test_absolute_actions_replay_the_recording():
    """From each recorded state, the converted action under the absolute controller puts the hand where the
    recorded delta action under the delta controller puts it; and the whole episode replays open loop the
    same way. (Both envs restart from the same state: a restart differs slightly from the continuous
    recording, because the contact solver's warm start is not part of a flattened state.)"""
    episode, _ = record()
    absolute = AbsoluteActionConverter(env_args_for("lift"))(episode["states"], episode["actions"])
    assert absolute.shape == (len(episode["actions"]), 10)
    envs = {kind: get_env_spec("robosuite").configure("lift", options={"absolute_actions": kind == "absolute"})
            .make(end_on_success=False) for kind in ("delta", "absolute")}
    actions = {"delta": episode["actions"], "absolute": absolute}
    reached = {kind: [] for kind in envs}
    for kind, env in envs.items():
        env.reset(seed=0)
        for state, action in zip(episode["states"], actions[kind]):
            env.sim.set_state_from_flattened(state)
            env.sim.forward()
            env.step(action)
            reached[kind].append(_eef(env))
    assert np.abs(np.array(reached["absolute"]) - np.array(reached["delta"])).max() < 1e-6
    assert np.abs(np.diff(reached["delta"], axis=0)).max() > 1e-2  # the hand moved: the check is not trivially met
    final = {}
    for kind, env in envs.items():
        env.sim.set_state_from_flattened(episode["states"][0])
        env.sim.forward()
        for action in actions[kind]:
            env.step(action)
        final[kind] = _eef(env)
        env.close()
    # open loop the two drift apart by the restart's tiny differences, compounding: within 0.1 mm after 25 steps
    assert np.abs(final["absolute"] - final["delta"]).max() < 1e-4


def _eef(env, state: np.ndarray | None = None) -> np.ndarray:
    """The hand's position in the simulator (in ``state``, when given)."""
    if state is not None:
        env.sim.set_state_from_flattened(state)
        env.sim.forward()
    return np.array(env.sim.data.site_xpos[env.robosuite_env.robots[0].eef_site_id["right"]])


@pytest.mark.slow
def test_import_converts_to_absolute_and_a_policy_trains_and_rolls_out(tmp_path, train_tiny):
    episodes = [record(seed=s)[0] for s in (0, 1)]
    hdf5 = write_robomimic(tmp_path / "lift.hdf5", episodes, env_args_for("lift"), masks={"train": [0, 1]})
    store = import_file(hdf5, tmp_path / "lift_abs.zarr", KEYS, mask="train", env="robosuite",
                        options={"absolute_actions": True}, progress=False)
    buffer = ReplayBuffer.open(store)
    assert buffer.data["action"].shape == (50, 10) and buffer.attrs["env_args"]["env_name"] == "Lift"
    report = train_tiny({"name": "robosuite", "task": "lift", "dataset": str(store), "max_episode_steps": 12,
                         "options": {"absolute_actions": True}, "rollout_workers": 0}, steps=10)
    assert report["env"] == "robosuite_lift"
    (row,) = report["rows"]
    assert row["episodes"] == 1 and row["per_episode"][0]["length"] == 12


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match=r"env.options: the robosuite env does not take \{'absolute': True\}"):
        get_env_spec("robosuite").configure("lift", options={"absolute": True})
    with pytest.raises(ValueError, match=r"env.task: expected one of the robosuite env's tasks"):
        get_env_spec("robosuite").configure("transport")


@pytest.mark.parametrize("task", ["can", "square"])
def test_the_expert_places_the_object(task):
    """One seeded episode each (Lift's is run by the demonstration test below); the success rates over 50
    episodes are on docs/results/robosuite.md."""
    spec = get_env_spec("robosuite").configure(task)
    env, expert = spec.make(), spec.make_expert(100_000)
    obs, _ = env.reset(seed=100_000)
    expert.reset(seed=100_000)
    for _ in range(spec.max_episode_steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs, env))
        if terminated or truncated:
            break
    env.close()
    assert info["success"] and terminated


def test_expert_demonstrations_go_through_a_robomimic_file(tmp_path):
    """The store is imported from the HDF5 file the expert's episodes were written to; with absolute
    actions asked for, the file keeps the recorded delta actions and the store holds the converted ones."""
    from shortcut_policy.data.demos import generate_demos
    from shortcut_policy.data.robomimic import read_info

    spec = get_env_spec("robosuite").configure("lift", options={"absolute_actions": True})
    store = generate_demos(spec, episodes=2, seed=100_000, out=tmp_path / "lift.zarr", progress=False)
    info = read_info(tmp_path / "lift.hdf5")
    assert info.demos == ("demo_0", "demo_1") and info.masks == {"train": ("demo_0", "demo_1")}
    assert info.action_dim == 7 and info.env_args["env_name"] == "Lift"
    buffer = ReplayBuffer.open(store)
    assert buffer.attrs["generator"] == "shortcut_policy.generate_demos" and buffer.attrs["options"] == {"absolute_actions": True}
    assert buffer.data["action"].shape[1] == 10 and sorted(buffer.keys) == sorted(KEYS + ["action"])
    assert buffer.n_steps == sum(info.num_samples.values()) and buffer.attrs["expert_attempts"] >= 2
    (tmp_path / "lift.zarr").rename(tmp_path / "moved.zarr")
    with pytest.raises(FileExistsError, match="lift.hdf5 already exists"):  # a file of the user's is never replaced unasked
        generate_demos(spec, episodes=2, seed=100_000, out=tmp_path / "lift.zarr", progress=False)


def test_a_failed_import_of_the_demonstrations_leaves_no_file(tmp_path, monkeypatch):
    """The expert's file is removed again when reading it back fails, so the next run starts clean."""
    from shortcut_policy.data import demos
    from shortcut_policy.envs.robosuite import recording

    def fail(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(recording, "read_robomimic", fail)
    spec = get_env_spec("robosuite").configure("lift")
    with pytest.raises(RuntimeError, match="interrupted"):
        demos.generate_demos(spec, episodes=1, seed=100_000, out=tmp_path / "lift.zarr", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_options_are_checked_and_defaults_dropped():
    spec = get_env_spec("robosuite")
    with pytest.raises(ValueError, match=r"env.options.absolute_actions: expected a bool \(default False\), got 'false'"):
        spec.configure("lift", options={"absolute_actions": "false"})
    assert spec.configure("lift", options={"absolute_actions": False}).options == {}  # the default: no option
    with pytest.raises(ValueError, match=r"env.options: the metaworld env does not take \{'typo': 1\}"):
        get_env_spec("metaworld").configure("reach-v3", options={"typo": 1})


def test_a_store_recorded_elsewhere_is_refused_before_training(tmp_path):
    """A store whose env_args name another task, rate or controller fails at once, naming the field."""
    episode, _ = record(steps=20)
    cases = {
        "another task": (env_args_for("can"), r"env_args.env_name: the store was recorded in 'PickPlaceCan', env.task=lift"),
        "another rate": ({**env_args_for("lift"), "env_kwargs": {**env_args_for("lift")["env_kwargs"], "control_freq": 10}},
                         r"env_args.env_kwargs.control_freq: the store was recorded at 10 Hz"),
        "another controller": ({**env_args_for("lift"), "env_kwargs": {**env_args_for("lift")["env_kwargs"],
                                "controller_configs": {"type": "JOINT_VELOCITY"}}}, r"expected an OSC_POSE arm controller"),
    }
    for name, (env_args, message) in cases.items():
        hdf5 = write_robomimic(tmp_path / f"{name}.hdf5", [episode, episode], env_args)
        store = import_file(hdf5, tmp_path / f"{name}.zarr", KEYS, progress=False)
        config = load_config({"env": {"name": "robosuite", "task": "lift", "dataset": str(store)},
                              "train": {"num_steps": 2, "batch_size": 4, "eval_episodes": 1, "eval_steps": [1]}})
        with pytest.raises(ValueError, match=message):
            run(config, tmp_path / f"run_{name}", progress=False)
        assert not (tmp_path / f"run_{name}" / "policy.safetensors").exists()


def test_a_robosuite_1_4_controller_config_is_converted():
    """robomimic's public files hold robosuite 1.4's arm config (damping, control_delta): it builds robosuite
    1.5's composite controller with the same gains, and the env_args check accepts it; other gains or
    absolute input are refused."""
    from shortcut_policy.envs.robosuite.env import build_from_env_args, check_store

    old = {"type": "OSC_POSE", "input_max": 1, "input_min": -1, "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
           "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5], "kp": 150, "damping": 1, "impedance_mode": "fixed",
           "kp_limits": [0, 300], "damping_limits": [0, 10], "position_limits": None, "orientation_limits": None,
           "uncouple_pos_ori": True, "control_delta": True, "interpolation": None, "ramp_ratio": 0.2}
    env_args = {"env_name": "Lift", "type": 1, "env_kwargs": {"robots": ["Panda"], "controller_configs": old, "control_freq": 20}}
    env = build_from_env_args(env_args, absolute=True)
    arm = env.robots[0].part_controllers["right"]
    assert arm.input_type == "absolute" and np.allclose(arm.kd, 2 * np.sqrt(150))
    env.close()
    check_store({"env_args": env_args}, "lift", {})
    for key, value, message in [("damping", 2, "damping_ratio: the store was recorded with 2"),
                                ("kp", 300, "kp: the store was recorded with 300"),
                                ("control_delta", False, "recorded with absolute controller input")]:
        changed = {**env_args, "env_kwargs": {**env_args["env_kwargs"], "controller_configs": {**old, key: value}}}
        with pytest.raises(ValueError, match=message):
            check_store({"env_args": changed}, "lift", {})


@pytest.mark.slow
def test_both_cameras_record_train_and_roll_out(tmp_path, train_tiny, monkeypatch):
    """Lift from its two cameras and the hand's own state: the expert's demonstrations record the images
    (uint8, through the robomimic file), a policy trains on them and rolls out, rendering them."""
    from shortcut_policy.data.demos import ensure_dataset

    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path))
    cameras = ["agentview_image", "robot0_eye_in_hand_image"]
    env = {"name": "robosuite", "task": "lift", "obs_keys": [*cameras, "robot0_eef_pos", "robot0_gripper_qpos"],
           "demo_episodes": 2, "rollout_workers": 0}
    config = load_config({"env": env})
    store = ensure_dataset(config.env, progress=False)
    assert store.name == "robosuite_lift_expert_images.zarr"
    buffer = ReplayBuffer.open(store)
    for key in cameras:
        assert buffer.data[key].dtype == np.uint8 and buffer.data[key].shape[1:] == (84, 84, 3)
    report = train_tiny({**env, "dataset": str(store), "max_episode_steps": 10}, steps=4)
    (row,) = report["rows"]
    assert row["episodes"] == 1 and row["per_episode"][0]["length"] == 10
