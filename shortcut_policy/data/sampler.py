"""Fixed-length training windows over a ReplayBuffer, with Diffusion Policy's edge padding."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .replay_buffer import DatasetError, ReplayBuffer, _describe

__all__ = ["SequenceSampler", "split_episodes"]


def _check_int(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DatasetError(f"{field}: expected an int >= {minimum}, got {_describe(value)}")
    return int(value)


class SequenceSampler:
    """Fixed-length training windows over episodes, padded at episode edges by repeating the edge frame.

    DP's rule: pad_before = n_obs_steps - 1, pad_after = n_action_steps - 1. For an episode of length L,
    window starts run from -pad_before to L - horizon + pad_after (inclusive); frame indices outside
    [0, L-1] are clipped to the edge frame. So the first window's current observation is frame 0 (its
    history repeats frame 0), and the last window's executed actions run past the end by repeating the
    last frame, which teaches the policy to hold still once the task is done.

    One extension: where DP's rule gives no window at all (L < horizon - n_obs_steps - n_action_steps + 2),
    the episode still gives exactly one window, starting at -pad_before, so short demonstrations are not
    silently dropped.

    The window's first n_obs_steps frames are the observation history; the action chunk covers the
    whole horizon, aligned with the same frames (as in DP). The sampler snapshots the buffer: episodes
    added later are not seen.
    """

    def __init__(
        self,
        buffer: ReplayBuffer,
        *,
        horizon: int,
        n_obs_steps: int,
        n_action_steps: int,
        obs_keys: Sequence[str],
        action_key: str = "action",
        episodes: Sequence[int] | None = None,
    ) -> None:
        if not isinstance(buffer, ReplayBuffer):
            raise DatasetError(f"buffer: expected a ReplayBuffer, got {_describe(buffer)}")
        horizon = _check_int(horizon, "horizon", 1)
        n_obs_steps = _check_int(n_obs_steps, "n_obs_steps", 1)
        n_action_steps = _check_int(n_action_steps, "n_action_steps", 1)
        if n_obs_steps > horizon:
            raise DatasetError(f"n_obs_steps: expected <= horizon ({horizon}), got {n_obs_steps}")
        if n_obs_steps - 1 + n_action_steps > horizon:
            raise DatasetError(
                f"n_action_steps: expected n_obs_steps - 1 + n_action_steps <= horizon ({horizon}), "
                f"got {n_obs_steps} - 1 + {n_action_steps} = {n_obs_steps - 1 + n_action_steps}"
            )

        available = buffer.keys
        if isinstance(obs_keys, str) or not isinstance(obs_keys, Sequence) or not obs_keys:
            raise DatasetError(f"obs_keys: expected a non-empty list of key names, got {_describe(obs_keys)}")
        if len(set(obs_keys)) != len(obs_keys):
            raise DatasetError(f"obs_keys: expected distinct names, got {list(obs_keys)}")
        missing = [k for k in obs_keys if k not in available]
        if missing:
            raise DatasetError(f"obs_keys: expected keys among the buffer's keys {available}, got missing {missing}")
        if action_key not in available:
            raise DatasetError(f"action_key: expected one of the buffer's keys {available}, got {action_key!r}")

        n_ep = buffer.n_episodes
        if episodes is None:
            if n_ep == 0:
                raise DatasetError("buffer: expected at least one episode, got an empty buffer")
            ep = np.arange(n_ep, dtype=np.int64)
        else:
            ep = np.asarray(episodes)
            if ep.ndim != 1 or ep.size == 0 or not np.issubdtype(ep.dtype, np.integer):
                raise DatasetError(f"episodes: expected a non-empty 1-D list of episode indices, got {_describe(ep)}")
            if ep.min() < 0 or ep.max() >= n_ep:
                raise DatasetError(
                    f"episodes: expected indices in [0, {n_ep}) (the buffer's n_episodes), got min {ep.min()} max {ep.max()}"
                )
            if np.unique(ep).size != ep.size:
                raise DatasetError(f"episodes: expected distinct indices, got duplicates in {ep.tolist()}")
            ep = ep.astype(np.int64)

        pad_before, pad_after = n_obs_steps - 1, n_action_steps - 1
        ends = buffer.episode_ends
        starts_of_episode = np.concatenate([[0], ends[:-1]])
        offsets = np.arange(horizon, dtype=np.int64)  # (horizon,)
        tables, owners = [], []
        for e in ep:
            first, length = int(starts_of_episode[e]), int(ends[e] - starts_of_episode[e])
            max_start = max(-pad_before, length - horizon + pad_after)
            window_starts = np.arange(-pad_before, max_start + 1, dtype=np.int64)  # (n_w,)
            frames = np.clip(window_starts[:, None] + offsets[None, :], 0, length - 1)  # (n_w, horizon)
            tables.append(first + frames)
            owners.append(np.full(len(window_starts), e, dtype=np.int64))

        self.horizon = horizon
        self.n_obs_steps = n_obs_steps
        self.n_action_steps = n_action_steps
        self.obs_keys = list(obs_keys)
        self.action_key = action_key
        self.episodes = ep
        # (n_windows, horizon) absolute buffer rows, so a batch is one fancy-index per key.
        self.indices: np.ndarray = np.concatenate(tables)
        # (n_windows,) which episode each window comes from.
        self.window_episode: np.ndarray = np.concatenate(owners)
        data = buffer.data
        self._data = {k: data[k] for k in {*self.obs_keys, action_key}}

    def __len__(self) -> int:
        """Number of windows."""
        return int(self.indices.shape[0])

    @staticmethod
    def _cast(x: np.ndarray) -> np.ndarray:
        # uint8 stays uint8 (images: 4x less memory, normalised later); everything else feeds networks as float32.
        return x if x.dtype == np.uint8 else x.astype(np.float32, copy=False)

    def sample(self, indices: np.ndarray) -> dict:
        """Gather a batch of windows.

        Returns {"obs": {key: (B, n_obs_steps, ...)}, "action": (B, horizon, ...)} as numpy,
        float32 except uint8 data (images), which stays uint8.
        """
        idx = np.asarray(indices)
        n = len(self)
        if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            raise DatasetError(f"indices: expected a 1-D integer array of window indices, got {_describe(idx)}")
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise DatasetError(f"indices: expected values in [0, {n}) (number of windows), got min {idx.min()} max {idx.max()}")
        rows = self.indices[idx.astype(np.int64)]  # (B, horizon)
        obs_rows = rows[:, : self.n_obs_steps]  # (B, n_obs_steps)
        obs = {k: self._cast(self._data[k][obs_rows]) for k in self.obs_keys}
        action = self._cast(self._data[self.action_key][rows])  # (B, horizon, A)
        return {"obs": obs, "action": action}

    def __getitem__(self, i: int) -> dict:
        """One window: {"obs": {key: (n_obs_steps, ...)}, "action": (horizon, ...)}."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"window index: expected an int, got {_describe(i)}")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"window index: expected -{n} <= i < {n}, got {i}")
        batch = self.sample(np.array([int(i) % n]))
        return {"obs": {k: v[0] for k, v in batch["obs"].items()}, "action": batch["action"][0]}


def split_episodes(n_episodes: int, val_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split episode indices into (train, val), both sorted int64, by episode so no window leaks across.

    Seeded, so a run's split is reproducible. At least one episode trains; if val_ratio > 0 and there
    are >= 2 episodes, at least one episode validates.
    """
    n_episodes = _check_int(n_episodes, "n_episodes", 1)
    if isinstance(val_ratio, bool) or not isinstance(val_ratio, (int, float, np.floating, np.integer)) or not (
        0.0 <= float(val_ratio) < 1.0
    ):
        raise DatasetError(f"val_ratio: expected a float in [0, 1), got {_describe(val_ratio)}")
    seed = _check_int(seed, "seed", 0)
    n_val = 0
    if val_ratio > 0 and n_episodes >= 2:
        n_val = min(max(1, round(n_episodes * float(val_ratio))), n_episodes - 1)
    perm = np.random.default_rng(seed).permutation(n_episodes)
    return np.sort(perm[n_val:]).astype(np.int64), np.sort(perm[:n_val]).astype(np.int64)
