"""robomimic HDF5 -> zarr store: the layout read exactly, the round trip exact, malformed files refused
with the field named and nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from shortcut_policy.data import ReplayBuffer
from shortcut_policy.data.replay_buffer import DatasetError
from shortcut_policy.data.robomimic import read_info, read_robomimic, write_robomimic
from shortcut_policy.import_robomimic import import_file

ENV_ARGS = {"env_name": "Lift", "type": 1, "env_kwargs": {"control_freq": 20, "controller_configs": {"type": "OSC_POSE"}}}


def synthetic_episodes(n: int = 5, seed: int = 0) -> list[dict]:
    """Demos of different lengths with robomimic's low-dim and image keys."""
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n):
        t = 7 + 3 * i
        episodes.append({
            "actions": rng.uniform(-1, 1, (t, 7)),
            "obs": {
                "robot0_eef_pos": rng.normal(size=(t, 3)),
                "robot0_eef_quat": rng.normal(size=(t, 4)),
                "robot0_gripper_qpos": rng.normal(size=(t, 2)),
                "object": rng.normal(size=(t, 10)),
                "agentview_image": rng.integers(0, 256, (t, 8, 8, 3), dtype=np.uint8),
            },
            "rewards": rng.uniform(size=t),
            "states": rng.normal(size=(t, 32)),
        })
    return episodes


@pytest.fixture
def hdf5(tmp_path: Path) -> tuple[Path, list[dict]]:
    episodes = synthetic_episodes()
    path = write_robomimic(tmp_path / "demos.hdf5", episodes, ENV_ARGS, masks={"train": [0, 2, 3], "valid": [1, 4]})
    return path, episodes


def test_written_file_has_robomimic_layout(hdf5):
    path, episodes = hdf5
    with h5py.File(path, "r") as f:
        assert json.loads(f["data"].attrs["env_args"]) == ENV_ARGS
        assert f["data"].attrs["total"] == sum(len(e["actions"]) for e in episodes)
        demo = f["data/demo_3"]
        assert demo.attrs["num_samples"] == len(episodes[3]["actions"])
        assert set(demo) == {"actions", "obs", "next_obs", "rewards", "dones", "states"}
        np.testing.assert_array_equal(demo["next_obs/object"][:-1], episodes[3]["obs"]["object"][1:])
        assert demo["dones"][-1] == 1 and demo["dones"][:-1].sum() == 0
        assert [n.decode() for n in f["mask/valid"][()]] == ["demo_1", "demo_4"]


def test_round_trip_keeps_every_value(hdf5, tmp_path):
    path, episodes = hdf5
    out = import_file(path, tmp_path / "store.zarr", progress=False)
    store = ReplayBuffer.open(out)
    assert store.n_episodes == len(episodes)
    np.testing.assert_array_equal(store.episode_lengths, [len(e["actions"]) for e in episodes])
    for i, episode in enumerate(episodes):
        got = store.get_episode(i)
        np.testing.assert_array_equal(got["action"], episode["actions"].astype(np.float32))
        for key, value in episode["obs"].items():
            assert got[key].dtype == (np.uint8 if key.endswith("_image") else np.float32)
            np.testing.assert_array_equal(got[key], value.astype(got[key].dtype))
    assert store.attrs["env_args"] == ENV_ARGS
    assert store.attrs["demos"] == [f"demo_{i}" for i in range(len(episodes))]


def test_mask_and_keys_select(hdf5):
    path, episodes = hdf5
    buffer = read_robomimic(path, ["object", "robot0_eef_pos"], mask="valid", progress=False)
    assert sorted(buffer.keys) == ["action", "object", "robot0_eef_pos"]
    assert buffer.attrs["demos"] == ["demo_1", "demo_4"] and buffer.attrs["mask"] == "valid"
    np.testing.assert_array_equal(buffer.get_episode(1)["object"], episodes[4]["obs"]["object"].astype(np.float32))


def test_demos_in_numeric_order(tmp_path):
    """robomimic orders demo_10 after demo_9, not after demo_1."""
    episodes = synthetic_episodes(12)
    path = write_robomimic(tmp_path / "d.hdf5", episodes, ENV_ARGS)
    assert read_info(path).demos == tuple(f"demo_{i}" for i in range(12))
    buffer = read_robomimic(path, ["object"], progress=False)
    np.testing.assert_array_equal(buffer.episode_lengths, [len(e["actions"]) for e in episodes])


class Doubler:
    """A converter that records what it was built from and given, and whether it was closed."""

    def __init__(self, env_args: dict) -> None:
        self.env_args, self.seen, self.closed = env_args, [], False

    def __call__(self, states, actions):
        self.seen.append(states.shape)
        return actions[:, :3] * 2

    def close(self) -> None:
        self.closed = True


def test_converter_replaces_actions(hdf5):
    path, episodes = hdf5
    made = []
    buffer = read_robomimic(path, ["object"], make_converter=lambda env_args: made.append(Doubler(env_args)) or made[-1],
                            progress=False)
    (converter,) = made
    assert converter.env_args == ENV_ARGS and converter.closed
    assert converter.seen == [e["states"].shape for e in episodes]
    np.testing.assert_allclose(buffer.get_episode(0)["action"], episodes[0]["actions"][:, :3] * 2, rtol=1e-6)
    assert buffer.attrs["actions"] == "converted"


def test_converting_needs_env_args_and_states(tmp_path):
    """Refused before the converter (a simulator) is built."""
    episodes = synthetic_episodes(2)
    built = []
    no_args = write_robomimic(tmp_path / "no_args.hdf5", episodes, None)
    with pytest.raises(DatasetError, match=r"data.attrs\['env_args'\]: converting actions needs the file's env_args"):
        read_robomimic(no_args, make_converter=built.append, progress=False)
    no_states = write_robomimic(tmp_path / "no_states.hdf5", [{k: v for k, v in e.items() if k != "states"} for e in episodes], ENV_ARGS)
    with pytest.raises(DatasetError, match=r"data/demo_0/states: converting actions needs the simulator states"):
        read_robomimic(no_states, make_converter=built.append, progress=False)
    assert built == []


def _break(path: Path, edit) -> None:
    with h5py.File(path, "r+") as f:
        edit(f)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["data/demo_2"].__delitem__("obs"), "data/demo_2/obs"),
    (lambda f: f["data/demo_0"].__delitem__("obs"), "data/demo_0/obs"),
    (lambda f: f["data/demo_1"].attrs.__setitem__("num_samples", 99), "data/demo_1.attrs['num_samples']"),
    (lambda f: f["data/demo_3/obs"].__delitem__("object"), "data/demo_3/obs/object"),
    (lambda f: f["data/demo_4/actions"].__setitem__((2, 1), np.nan), "data/demo_4/actions: expected finite"),
    (lambda f: f["data"].attrs.__setitem__("env_args", "{not json"), "env_args"),
    (lambda f: f["data"].create_group("extra"), "data/extra"),
], ids=["no-obs", "no-obs-first", "num-samples", "missing-key", "nan", "env-args", "stray-group"])
def test_malformed_file_is_refused_and_nothing_written(hdf5, tmp_path, edit, message):
    path, _ = hdf5
    _break(path, edit)
    out = tmp_path / "out.zarr"
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_file(path, out, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["demos.hdf5"]  # no temp left either


def test_no_data_group(tmp_path):
    path = tmp_path / "empty.hdf5"
    with h5py.File(path, "w") as f:
        f.create_group("mask")
    with pytest.raises(DatasetError, match="data: expected a group data/"):
        import_file(path, tmp_path / "out.zarr", progress=False)
    assert not (tmp_path / "out.zarr").exists()


def test_bad_requests(hdf5, tmp_path):
    path, _ = hdf5
    with pytest.raises(DatasetError, match=r"mask: expected one of the file's filters \['train', 'valid'\], got '20_percent'"):
        read_robomimic(path, mask="20_percent", progress=False)
    with pytest.raises(DatasetError, match=r"obs_keys: .*got \['cube_pos'\]"):
        read_robomimic(path, ["object", "cube_pos"], progress=False)
    with pytest.raises(DatasetError, match="not a file"):
        read_info(tmp_path / "missing.hdf5")
    (tmp_path / "text.hdf5").write_text("not hdf5")
    with pytest.raises(DatasetError, match="h5py cannot open"):
        read_info(tmp_path / "text.hdf5")


def test_existing_store_is_not_overwritten_unless_asked(hdf5, tmp_path):
    path, episodes = hdf5
    out = import_file(path, tmp_path / "store.zarr", mask="train", progress=False)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        import_file(path, out, progress=False)
    assert ReplayBuffer.open(out).n_episodes == 3
    import_file(path, out, overwrite=True, progress=False)
    assert ReplayBuffer.open(out).n_episodes == len(episodes)


def test_the_writer_refuses_inconsistent_episodes(tmp_path):
    episodes = synthetic_episodes(2)
    short = {**episodes[1], "obs": {**episodes[1]["obs"], "object": episodes[1]["obs"]["object"][:-1]}}
    nan = {**episodes[1], "actions": np.full_like(episodes[1]["actions"], np.nan)}
    for bad, message in [([episodes[0], short], r"episodes\[1\].obs.object: expected 10 steps"),
                         ([episodes[0], nan], r"episodes\[1\].actions: expected finite"),
                         ([{**episodes[0], "actions": np.zeros((0, 7))}], r"episodes\[0\].actions: expected \(steps >= 1")]:
        with pytest.raises(DatasetError, match=message):
            write_robomimic(tmp_path / "bad.hdf5", bad, ENV_ARGS)
    with pytest.raises(DatasetError, match=r"masks\['train'\]: expected episode indices in 0..1, got \[2\]"):
        write_robomimic(tmp_path / "bad.hdf5", episodes, ENV_ARGS, masks={"train": [0, 2]})
    assert list(tmp_path.iterdir()) == []


def test_the_command_names_a_bad_field(hdf5, tmp_path):
    import os
    import subprocess
    import sys

    path, _ = hdf5
    result = subprocess.run([sys.executable, "-m", "shortcut_policy.import_robomimic", f"path={path}", "obs_keys=object",
                             f"out={tmp_path / 'x.zarr'}"], capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "0"})
    assert result.returncode == 1 and "error: obs_keys: expected a list of keys" in result.stderr
    result = subprocess.run([sys.executable, "-m", "shortcut_policy.import_robomimic", f"path={path}", "mask=valid",
                             f"out={tmp_path / 'x.zarr'}"], capture_output=True, text=True)
    assert result.returncode == 0 and f"wrote {tmp_path / 'x.zarr'}" in result.stdout
    assert ReplayBuffer.open(tmp_path / "x.zarr").n_episodes == 2
