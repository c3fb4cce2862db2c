"""The one policy class: observation history in, actions out, whatever backbone or objective made it.

``act`` is cheap to call every control tick: it keeps the last ``n_obs_steps`` observations and a
queue of the predicted chunk, and runs the network only when the queue is empty (every
``n_action_steps`` calls), as Diffusion Policy and LeRobot do.
"""

from __future__ import annotations

import collections
import os
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from omegaconf.errors import OmegaConfBaseException

from .cuda_graph import GraphedSampler
from .checkpoint import POLICY_FILE, check_finite, load_tensors, mismatch_detail, prefixed, resolve_checkpoint, save_tensors, unprefixed
from .config import RunConfig, as_trained, load_config, to_dict
from .data.normalizer import MinMaxNormalizer
from .models.network import ChunkDenoiser, build_network
from .objectives import Objective, build_objective, with_sampling
from .utils.device import resolve_device


class Policy:
    """A trained network, its normalizer and the objective's sampler, behind ``act`` and ``predict_chunk``."""

    def __init__(
        self,
        network: ChunkDenoiser,
        normalizer: MinMaxNormalizer,
        objective: Objective,
        config: RunConfig,
        obs_shapes: Mapping[str, tuple[int, ...]],
        action_dim: int,
        device: str | torch.device = "cpu",
        cuda_graph: bool | None = None,
    ) -> None:
        self.device = resolve_device(str(device))
        if cuda_graph and self.device.type != "cuda":
            raise ValueError(f"cuda_graph: CUDA graphs need a CUDA device, got device {self.device} (leave cuda_graph unset)")
        # replanning at batch 1 on a GPU replays a CUDA graph captured per step budget (cuda_graph.py); False: eager
        self.cuda_graph = self.device.type == "cuda" if cuda_graph is None else bool(cuda_graph)
        self._graphs: dict[tuple[int, int], Any] = {}
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.normalizer = normalizer.to(self.device)
        self.objective = objective
        self.config = config
        self.obs_keys = list(config.env.obs_keys)
        self.obs_shapes = {k: tuple(obs_shapes[k]) for k in self.obs_keys}
        self.action_dim = action_dim
        self.horizon = config.policy.horizon
        self.n_obs_steps = config.policy.n_obs_steps
        self.n_action_steps = config.policy.n_action_steps
        self._history: collections.deque = collections.deque(maxlen=self.n_obs_steps)
        self._queue: collections.deque = collections.deque()
        self._generator: torch.Generator | None = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, device: str = "cpu", sampling: Mapping[str, Any] | None = None,
        cuda_graph: bool | None = None,
    ) -> "Policy":
        """Load a ``policy.safetensors`` (or a run folder holding one).

        ``sampling`` replaces sampling-only options of the stored objective (``OBJECTIVES[name].sampling_options``,
        e.g. ``{"timestep_spacing": "leading"}`` for a DDPM checkpoint); the policy's config records them.
        ``cuda_graph``: replan through CUDA graphs (default: on a CUDA device; False turns them off)."""
        file = resolve_checkpoint(path, POLICY_FILE)
        tensors, meta = load_tensors(file)
        missing = [k for k in ("config", "obs_shapes", "action_dim") if k not in meta]
        if missing:
            raise ValueError(
                f"checkpoint {file}: expected a policy file ({POLICY_FILE}, with the config, observation shapes and "
                f"action size), got a file without {missing}" + (" (a training state)" if "step" in meta else "")
            )
        check_finite(file, tensors)
        try:
            config = load_config(as_trained(meta["config"]))
            config.objective = with_sampling(config.objective, sampling)
            objective = build_objective(config.objective)
            obs_shapes = {k: tuple(v) for k, v in meta["obs_shapes"].items()}
            network = build_network(config.policy, {k: obs_shapes[k] for k in config.env.obs_keys}, meta["action_dim"])
            network.load_state_dict(unprefixed("net", tensors), strict=True)
            normalizer = MinMaxNormalizer.from_state_dict(unprefixed("normalizer", tensors))
        except (ValueError, TypeError, KeyError, RuntimeError, AttributeError, OmegaConfBaseException) as err:
            # an edited config no longer matches the weights beside it (load_state_dict's size mismatches)
            raise ValueError(f"checkpoint {file}: its config and weights do not fit together ({mismatch_detail(err)})") from err
        policy = cls(network, normalizer, objective, config, obs_shapes, meta["action_dim"], device, cuda_graph)
        policy.meta = meta
        return policy

    def save(self, path: str | os.PathLike, extra_meta: Mapping[str, Any] | None = None) -> Path:
        """Write this policy as one safetensors file (weights, normalizer, config), atomically."""
        return save_policy(path, self.network, self.normalizer, self.config, self.obs_shapes, self.action_dim, extra_meta)

    # ---------------------------------------------------------------- control
    def reset(self, seed: int | None = None) -> None:
        """Forget the observation history and the queued actions (call at every episode start)."""
        self._history.clear()
        self._queue.clear()
        if seed is not None:
            self._generator = torch.Generator().manual_seed(seed)

    @property
    def will_replan(self) -> bool:
        """True when the next ``act`` call runs the network (the action queue is empty)."""
        return not self._queue

    def act(self, obs: Mapping[str, Any] | np.ndarray, steps: int = 1) -> np.ndarray:
        """The next action (action_dim,) for a raw environment observation; replans when the queue is empty."""
        self.objective.validate_steps(steps)
        frame = self._validate_obs(obs)
        if not self._history:
            self._history.extend([frame] * self.n_obs_steps)  # pad the start by repeating the first frame
        else:
            self._history.append(frame)
        if not self._queue:
            batch = {k: np.stack([f[k] for f in self._history])[None] for k in self.obs_keys}  # (1, To, ...)
            self._queue.extend(self.predict_chunk(batch, steps=steps, validate=False)[0])
        return self._queue.popleft()

    @torch.inference_mode()
    def predict_chunk(
        self,
        obs: Mapping[str, Any],
        steps: int = 1,
        full: bool = False,
        generator: torch.Generator | None = None,
        validate: bool = True,
    ) -> np.ndarray:
        """Batched prediction from observation histories ``obs[key]`` (B, n_obs_steps, *shape).

        Returns the ``n_action_steps`` actions to execute (B, n_action_steps, A), aligned with the
        last observed frame as in Diffusion Policy, or the whole chunk (B, horizon, A) if ``full``.
        """
        if validate:
            self.objective.validate_steps(steps)
            obs = self._validate_batch(obs)
        generator = generator or self._generator
        graph = self._graph(steps, len(next(iter(obs.values()))))
        if graph is not None:
            actions = graph.predict(obs, generator).cpu().numpy()  # (B, H, A)
        else:
            actions = self.chunk(self._as_tensors(obs), steps, generator).cpu().numpy()  # (B, H, A)
        if not np.isfinite(actions).all():  # never handed to a robot: an observation far outside the training data?
            bad = sorted({int(b) for b in np.nonzero(~np.isfinite(actions))[0]})
            nobs = {k: self.normalizer.normalize(k, v) for k, v in self._as_tensors(obs).items()}
            raise FloatingPointError(
                f"action: the policy computed NaN or inf actions for batch rows {bad}; the observations there "
                f"(normalized range {_ranges(nobs, bad)}) may lie far outside the training data's [-1, 1]"
            )
        if full:
            return actions
        start = self.n_obs_steps - 1
        return actions[:, start : start + self.n_action_steps]

    def chunk(self, obs: Mapping[str, torch.Tensor], steps: int, generator: torch.Generator | None) -> torch.Tensor:
        """Raw observation histories (B, n_obs_steps, *shape) on the device -> the whole chunk (B, horizon, A)
        in action units: normalize, encode once, sample, unnormalize (what a CUDA graph records too)."""
        nobs = {k: self.normalizer.normalize(k, obs[k]) for k in self.obs_keys}
        x = self.objective.sample(self.network, self.network.encode(nobs), (self.horizon, self.action_dim), steps, generator)
        return self.normalizer.unnormalize(self.config.env.action_key, x)

    def _as_tensors(self, obs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(obs[k], device=self.device, dtype=torch.float32) for k in self.obs_keys}

    def _graph(self, steps: int, batch: int) -> GraphedSampler | None:
        """The CUDA graph of a batch-1 replanning call at ``steps`` (captured on first use), or None: the
        eager path (no graphs, or a batched call: a rollout's batch shrinks as episodes end, and each
        size would be another capture)."""
        if not self.cuda_graph or batch != 1:
            return None
        if (steps, batch) not in self._graphs:
            try:
                self._graphs[steps, batch] = GraphedSampler(self, steps, batch)
            except RuntimeError as err:  # a network whose forward cannot be recorded: act eagerly
                warnings.warn(f"cuda_graph: capturing the sampler failed ({err}); acting eagerly from now on "
                              "(cuda_graph=False says so up front)")
                self.cuda_graph = False
                return None
        return self._graphs[steps, batch]

    # ------------------------------------------------------------- validation
    def _validate_obs(self, obs: Mapping[str, Any] | np.ndarray) -> dict[str, np.ndarray]:
        if not isinstance(obs, Mapping):
            if len(self.obs_keys) != 1:
                raise TypeError(
                    f"obs: expected a dict with keys {self.obs_keys}, got {type(obs).__name__}"
                )
            obs = {self.obs_keys[0]: obs}
        frame = {}
        for key in self.obs_keys:
            value = self._lookup(obs, key)
            # a copy: the history outlives this call, and a control loop may refill one buffer in place
            value = value.detach().cpu().numpy().copy() if torch.is_tensor(value) else np.array(value)
            if value.shape != self.obs_shapes[key]:
                raise ValueError(f"obs[{key!r}]: expected shape {self.obs_shapes[key]}, got {value.shape}")
            _check_values(f"obs[{key!r}]", value)
            frame[key] = value
        return frame

    def _lookup(self, obs: Mapping[str, Any], key: str) -> Any:
        if key not in obs:
            raise KeyError(f"obs: expected key {key!r} (policy observes {self.obs_keys}), got keys {sorted(obs)}")
        return obs[key]

    def _validate_batch(self, obs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(obs, Mapping):
            raise TypeError(f"obs: expected a dict with keys {self.obs_keys}, got {type(obs).__name__}")
        out, batch = {}, None
        for key in self.obs_keys:
            value = self._lookup(obs, key)
            value = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            expected = (self.n_obs_steps, *self.obs_shapes[key])
            if value.ndim != len(expected) + 1 or value.shape[1:] != expected:
                raise ValueError(f"obs[{key!r}]: expected shape (B, {', '.join(map(str, expected))}), got {value.shape}")
            if batch is not None and value.shape[0] != batch:
                raise ValueError(f"obs[{key!r}]: expected batch size {batch} like the other keys, got {value.shape[0]}")
            batch = value.shape[0]
            _check_values(f"obs[{key!r}]", value)
            out[key] = value
        return out


def _ranges(nobs: Mapping[str, torch.Tensor], rows: list[int]) -> str:
    return ", ".join(f"{k}: {float(v[rows].min()):.3g}..{float(v[rows].max()):.3g}" for k, v in nobs.items())


def _check_values(name: str, value: np.ndarray) -> None:
    if value.dtype == bool or not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real-valued numeric array, got dtype {value.dtype}")
    if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def save_policy(
    path: str | os.PathLike,
    network: torch.nn.Module,
    normalizer: MinMaxNormalizer,
    config: RunConfig,
    obs_shapes: Mapping[str, tuple[int, ...]],
    action_dim: int,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    tensors = {**prefixed("net", network.state_dict()), **prefixed("normalizer", normalizer.state_dict())}
    meta = {
        "config": to_dict(config),
        "objective": config.objective["name"],
        "obs_shapes": {k: list(v) for k, v in obs_shapes.items()},
        "action_dim": action_dim,
        **(extra_meta or {}),
    }
    return save_tensors(path, tensors, meta)


def load_policy(
    path: str | os.PathLike, device: str = "cpu", sampling: Mapping[str, Any] | None = None, cuda_graph: bool | None = None
) -> Policy:
    """Load a trained policy from a ``policy.safetensors`` file or a run folder (``sampling``, ``cuda_graph``:
    see ``from_pretrained``)."""
    return Policy.from_pretrained(path, device, sampling, cuda_graph)
