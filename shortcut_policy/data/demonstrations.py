"""A policy's training data, built in one place: store -> episode split -> windows -> normalizer.

Everything a training run reads from its demonstration store is made here, in the order the data
flows: the store's arrays in memory, each observation key's feature (its shape from the store, its
kind as the environment declares it), the episodes split into training and validation, a window
sampler for each split, and the normalizer fit on the store. The trainer then only shards the
training windows and builds the network from the features.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from ..features import ObsSpec, stored_layout_type
from .normalizer import MinMaxNormalizer
from .replay_buffer import ReplayBuffer
from .sampler import SequenceSampler, split_episodes

IMAGE_RANGE = (0.0, 255.0)  # camera images are scaled by a fixed range, not per-pixel statistics


@dataclass
class Demonstrations:
    """The store at ``path`` read for training (see the module docstring)."""

    path: Path
    buffer: ReplayBuffer
    obs: dict[str, ObsSpec]  # the observed keys, in the order the policy's encoder takes them
    action_key: str
    action_dim: int
    samplers: dict[str, SequenceSampler]  # "train", and "val" when an episode is held out
    normalizer: MinMaxNormalizer

    @classmethod
    def open(
        cls,
        path: str | Path,
        obs_keys: Sequence[str],
        action_key: str,
        declared: Mapping[str, ObsSpec],
        window: Mapping[str, int],
        val_ratio: float,
        seed: int,
    ) -> "Demonstrations":
        """Read ``obs_keys`` and ``action_key`` of the store. ``declared``: the environment's observation
        keys (a key it does not declare takes its kind from the store's layout); ``window``: ``horizon``,
        ``n_obs_steps`` and ``n_action_steps``; ``val_ratio`` and ``seed``: the episode split."""
        path = Path(path)
        buffer = ReplayBuffer.open(path, keys=[*obs_keys, action_key])
        actions = buffer.data[action_key]
        if actions.ndim != 2:  # (N,) would read as N-dimensional actions
            raise ValueError(f"env.dataset {path}: data/{action_key}: expected (steps, action_dim) actions, got shape {actions.shape}")
        obs = {}
        for key in obs_keys:
            shape = tuple(buffer.data[key].shape[1:])
            obs[key] = ObsSpec(shape, declared[key].type if key in declared else stored_layout_type(shape))
        cameras = [k for k, spec in obs.items() if spec.type == "rgb"]
        buffer.images_to_uint8(cameras)  # before the samplers take views of the arrays

        train_eps, val_eps = split_episodes(buffer.n_episodes, val_ratio, seed)
        windows = dict(window, obs_keys=list(obs_keys), action_key=action_key)
        samplers = {"train": SequenceSampler(buffer, episodes=train_eps, **windows)}
        if len(val_eps):
            samplers["val"] = SequenceSampler(buffer, episodes=val_eps, **windows)
        elif val_ratio > 0:
            print(f"warning: {path} holds {buffer.n_episodes} episode(s): none is held out (train.val_ratio={val_ratio}), "
                  "so no validation loss is logged")

        keys = [*obs_keys, action_key]
        normalizer = MinMaxNormalizer.fit({k: buffer.data[k] for k in keys}, fixed_ranges={k: IMAGE_RANGE for k in cameras})
        return cls(path, buffer, obs, action_key, int(actions.shape[-1]), samplers, normalizer)

    def summary(self) -> str:
        return f"{self.buffer.n_episodes} episodes, {len(self.samplers['train'])} windows"
