"""robomimic's HDF5 demonstrations: read one into a store in Diffusion Policy's layout, or write one.

The layout robomimic (and the robosuite datasets made with it) uses::

    data/                       attrs: env_args (JSON: env_name, type, env_kwargs), total
    data/demo_<i>/              attrs: num_samples (steps of this demo), model_file (optional MJCF)
        actions     (T, A)      float
        obs/<key>   (T, ...)    low-dim float, or images uint8 (T, H, W, 3)
        next_obs/<key>          the observation after each step
        rewards (T,), dones (T,), states (T, S)    the flattened simulator state before each step
    mask/<filter>               names of demos (bytes), e.g. train / valid / 20_percent

Reading never trusts the file: every demo's arrays must agree with its ``num_samples``, every chosen key
must be in every chosen demo, and a non-finite number is refused, each with the demo and key named,
before anything is written. Writing goes to a temp file renamed into place, so a crash never leaves half
a file under the final name; the tests and the scripted experts write through here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..utils.io import atomic_write
from .replay_buffer import DatasetError, ReplayBuffer

IMPORTER = "shortcut_policy.import_robomimic"  # recorded in every store read from a robomimic file
_DEMO = re.compile(r"demo_(\d+)")

# (states (T, S), actions (T, A)) -> actions (T, A'), e.g. delta end-effector actions to absolute poses
ActionConverter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _h5py():
    try:
        import h5py
    except ModuleNotFoundError:
        raise ModuleNotFoundError("robomimic files are HDF5: pip install h5py") from None
    return h5py


@dataclass(frozen=True)
class RobomimicInfo:
    """What a robomimic file holds, read from its metadata (no array is loaded)."""

    path: Path
    demos: tuple[str, ...]  # in robomimic's order: by the number in the name
    obs: Mapping[str, tuple[tuple[int, ...], str]]  # key -> (per-step shape, dtype) in the first demo
    action_dim: int
    masks: Mapping[str, tuple[str, ...]]
    env_args: dict | None
    num_samples: Mapping[str, int]
    has_states: bool  # the first demo holds simulator states (what converting actions needs)

    def obs_keys(self, keys: Sequence[str] | None) -> list[str]:
        """``keys`` checked against the file's obs/ (None: all of them)."""
        if keys is None:
            return list(self.obs)
        if isinstance(keys, str) or not keys:
            raise DatasetError(f"obs_keys: expected a non-empty list of keys of obs/ ({sorted(self.obs)}), got {keys!r}")
        missing = [k for k in keys if k not in self.obs]
        if missing:
            raise DatasetError(f"obs_keys: expected keys of data/{self.demos[0]}/obs ({sorted(self.obs)}), got {missing}")
        return list(keys)

    def select(self, mask: str | None) -> list[str]:
        """The demos of ``mask`` (None: all), in file order."""
        if mask is None:
            return list(self.demos)
        if mask not in self.masks:
            raise DatasetError(f"mask: expected one of the file's filters {sorted(self.masks)}, got {mask!r}")
        listed = set(self.masks[mask])
        unknown = sorted(listed - set(self.demos))
        if unknown:
            raise DatasetError(f"mask/{mask}: expected names of demos in data/, got {unknown[:5]} that are not there")
        return [d for d in self.demos if d in listed]


def read_info(path: str | os.PathLike) -> RobomimicInfo:
    """The file's demos, observation keys, masks and env_args; refuses a file that is not robomimic's layout."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"path: expected a robomimic HDF5 file, got {str(path)!r}, which is not a file")
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"path: expected an HDF5 file, got {str(path)!r}, which h5py cannot open ({err})") from None
    with f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise DatasetError(f"data: expected a group data/ in {str(path)!r} (robomimic's layout), got {sorted(f)}")
        data = f["data"]
        numbered = []
        for name in data:
            match = _DEMO.fullmatch(name)
            if match is None or not isinstance(data[name], h5py.Group):
                raise DatasetError(f"data/{name}: expected only groups named demo_<number> in data/, got {name!r}")
            numbered.append((int(match.group(1)), name))
        if not numbered:
            raise DatasetError(f"data: expected at least one demo_<number> group in {str(path)!r}, got none")
        demos = tuple(name for _, name in sorted(numbered))
        first = data[demos[0]]
        for field in ("actions", "obs"):
            if field not in first:
                raise DatasetError(f"data/{demos[0]}/{field}: expected it in {str(path)!r}, got {sorted(first)}")
        if not isinstance(first["obs"], h5py.Group):
            raise DatasetError(f"data/{demos[0]}/obs: expected a group of observation arrays, got a dataset")
        obs = {key: (tuple(arr.shape[1:]), str(arr.dtype)) for key, arr in first["obs"].items()}
        actions = first["actions"]
        if actions.ndim != 2:
            raise DatasetError(f"data/{demos[0]}/actions: expected (steps, action_dim), got shape {actions.shape}")
        num_samples = {d: _num_samples(data[d], d) for d in demos}
        env_args = None
        if "env_args" in data.attrs:
            raw = data.attrs["env_args"]
            try:
                env_args = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            except ValueError as err:
                raise DatasetError(f"data.attrs['env_args']: expected JSON, got text that does not parse ({err})") from None
            if not isinstance(env_args, dict):
                raise DatasetError(f"data.attrs['env_args']: expected a JSON object, got {type(env_args).__name__}")
        masks = {}
        if "mask" in f:
            for name, names in f["mask"].items():
                masks[name] = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names[()])
        return RobomimicInfo(path, demos, obs, int(actions.shape[1]), masks, env_args, num_samples, "states" in first)


def _num_samples(demo: Any, name: str) -> int:
    """A demo's ``num_samples`` attribute, or its actions' length when the file has none."""
    if "actions" not in demo:
        raise DatasetError(f"data/{name}/actions: expected an array of actions, got {sorted(demo)}")
    length = int(demo["actions"].shape[0])
    if "num_samples" not in demo.attrs:
        return length
    n = int(demo.attrs["num_samples"])
    if n != length:
        raise DatasetError(f"data/{name}.attrs['num_samples']: expected the length of its actions ({length}), got {n}")
    return n


def read_robomimic(
    path: str | os.PathLike,
    obs_keys: Sequence[str] | None = None,
    mask: str | None = None,
    make_converter: Callable[[dict], ActionConverter | None] | None = None,
    progress: bool = True,
) -> ReplayBuffer:
    """The demos of ``mask`` (None: all) as one in-RAM store: ``data/<obs key>`` for each of ``obs_keys``
    (None: every key of the file's obs/) and ``data/action``, one episode per demo in file order.

    ``make_converter(env_args)`` gives a ``convert(states, actions)`` that replaces each demo's actions
    (absolute poses from delta ones; it may hold a simulator, closed at the end), or None to keep them; it
    is called after the cheap checks of the file and the request. Without it the actions are kept as
    recorded. Images stay uint8 (T, H, W, 3), low-dim keys float32 as Diffusion Policy's robomimic stores
    hold them."""
    info = read_info(path)
    obs_keys = info.obs_keys(obs_keys)
    demos = info.select(mask)
    if not demos:
        raise DatasetError(f"mask/{mask}: expected at least one demo, got an empty filter")
    convert = None
    if make_converter is not None:
        if info.env_args is None:
            raise DatasetError(f"data.attrs['env_args']: converting actions needs the file's env_args (its controller), "
                               f"got none in {str(info.path)!r}")
        if not info.has_states:
            raise DatasetError(f"data/{info.demos[0]}/states: converting actions needs the simulator states, got none")
        convert = make_converter(info.env_args)
    h5py = _h5py()
    buffer = ReplayBuffer()
    try:
        with h5py.File(info.path, "r") as f:
            for name in tqdm(demos, desc=f"import {info.path.name}", unit="demo", disable=not progress):
                buffer.add_episode(_read_demo(f["data"][name], name, obs_keys, info, convert))
    finally:
        getattr(convert, "close", lambda: None)()
    buffer.attrs.update({
        "generator": IMPORTER,
        "source": str(info.path.resolve()),
        "mask": mask,
        "demos": demos,
        "obs_keys": list(obs_keys),
        "actions": "as recorded" if convert is None else "converted",
        "env_args": info.env_args,
    })
    return buffer


def _read_demo(demo: Any, name: str, obs_keys: Sequence[str], info: RobomimicInfo,
               convert_actions: ActionConverter | None) -> dict[str, np.ndarray]:
    n = info.num_samples[name]
    if "obs" not in demo:
        raise DatasetError(f"data/{name}/obs: expected a group of observations, got {sorted(demo)}")
    episode = {}
    for key in obs_keys:
        if key not in demo["obs"]:
            raise DatasetError(f"data/{name}/obs/{key}: expected it in every demo, got {sorted(demo['obs'])}")
        array = demo["obs"][key][()]
        shape, dtype = info.obs[key]
        if array.shape != (n, *shape) or str(array.dtype) != dtype:
            raise DatasetError(f"data/{name}/obs/{key}: expected shape {(n, *shape)} and dtype {dtype} (num_samples, and "
                               f"as in {info.demos[0]}), got shape {array.shape} and dtype {array.dtype}")
        episode[key] = array if array.dtype == np.uint8 else _finite(array, f"data/{name}/obs/{key}").astype(np.float32)
    actions = _finite(demo["actions"][()], f"data/{name}/actions")
    if actions.shape != (n, info.action_dim):
        raise DatasetError(f"data/{name}/actions: expected shape {(n, info.action_dim)}, got {actions.shape}")
    if convert_actions is not None:
        if "states" not in demo:
            raise DatasetError(f"data/{name}/states: converting actions needs the simulator states, got {sorted(demo)}")
        states = demo["states"][()]
        if states.ndim != 2 or states.shape[0] != n:
            raise DatasetError(f"data/{name}/states: expected shape ({n}, state_dim), got {states.shape}")
        actions = _finite(np.asarray(convert_actions(states, actions)), f"data/{name}/actions (converted)")
    episode["action"] = actions.astype(np.float32)
    return episode


def _finite(array: np.ndarray, field: str) -> np.ndarray:
    if not np.issubdtype(array.dtype, np.number):
        raise DatasetError(f"{field}: expected numbers, got dtype {array.dtype}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise DatasetError(f"{field}: expected finite numbers, got {int(bad.sum())} non-finite value(s), the first at "
                           f"index {tuple(int(i) for i in np.argwhere(bad)[0])}")
    return array


def write_robomimic(
    path: str | os.PathLike,
    episodes: Sequence[Mapping[str, Any]],
    env_args: Mapping[str, Any] | None,
    masks: Mapping[str, Sequence[int]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``episodes`` as a robomimic file, atomically; returns its path.

    Each episode is a dict with ``actions`` (T, A), ``obs`` {key: (T, ...)}, and optionally ``next_obs``
    (default: ``obs`` shifted by one, the last repeated), ``rewards`` and ``dones`` (default zeros, the last
    done) and ``states`` (T, S). ``masks`` maps a filter name to episode indices."""
    path = Path(path)
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise FileExistsError(f"out: {path} already exists; pass overwrite=true to replace it")
    if not episodes:
        raise DatasetError("episodes: expected at least one episode to write, got none")
    for i, episode in enumerate(episodes):  # checked before anything is written
        actions = _finite(np.asarray(episode["actions"]), f"episodes[{i}].actions")
        if actions.ndim != 2 or len(actions) == 0:
            raise DatasetError(f"episodes[{i}].actions: expected (steps >= 1, action_dim), got shape {actions.shape}")
        arrays = {f"obs.{k}": v for k, v in episode["obs"].items()} | {k: episode[k] for k in ("states", "rewards", "dones") if k in episode}
        for name, value in arrays.items():
            value = np.asarray(value)
            if len(value) != len(actions):
                raise DatasetError(f"episodes[{i}].{name}: expected {len(actions)} steps (as its actions), got {len(value)}")
            if value.dtype != np.uint8:
                _finite(value, f"episodes[{i}].{name}")
    for name, indices in (masks or {}).items():
        bad = [j for j in indices if not 0 <= j < len(episodes)]
        if bad:
            raise DatasetError(f"masks[{name!r}]: expected episode indices in 0..{len(episodes) - 1}, got {bad}")
    h5py = _h5py()

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            total = 0
            for i, episode in enumerate(episodes):
                actions = np.asarray(episode["actions"])
                n = len(actions)
                demo = data.create_group(f"demo_{i}")
                demo.attrs["num_samples"] = n
                demo.create_dataset("actions", data=actions)
                next_obs = episode.get("next_obs") or {k: np.concatenate([v[1:], v[-1:]]) for k, v in episode["obs"].items()}
                for group, values in (("obs", episode["obs"]), ("next_obs", next_obs)):
                    for key, value in values.items():
                        demo.create_dataset(f"{group}/{key}", data=np.asarray(value))
                dones = np.zeros(n, dtype=np.int64)
                dones[-1] = 1
                demo.create_dataset("rewards", data=np.asarray(episode.get("rewards", np.zeros(n))))
                demo.create_dataset("dones", data=np.asarray(episode.get("dones", dones)))
                if "states" in episode:
                    demo.create_dataset("states", data=np.asarray(episode["states"]))
                total += n
            data.attrs["total"] = total
            if env_args is not None:
                data.attrs["env_args"] = json.dumps(dict(env_args))
            for name, indices in (masks or {}).items():
                f.create_dataset(f"mask/{name}", data=np.array([f"demo_{i}".encode() for i in indices], dtype="S"))

    return atomic_write(path, write)
