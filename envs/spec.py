"""The environment contract: what every environment fills in so that demos, training, rollouts and reports
can use it without knowing its name.

An environment is a folder under ``envs/`` whose ``__init__.py`` builds one :class:`EnvSpec` and calls
``register_env``; nothing generic changes when one is added.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Mapping, Protocol, Sequence

import gymnasium as gym
import numpy as np

from ..utils.checks import at_least, check_workers

ObsType = Literal["low_dim", "rgb"]


@dataclass(frozen=True)
class ObsSpec:
    """One observation key, as Diffusion Policy's ``shape_meta`` describes it."""

    shape: tuple[int, ...]  # per frame; rgb: (H, W, 3) uint8
    type: ObsType = "low_dim"

    def __post_init__(self) -> None:
        if self.type not in ("low_dim", "rgb"):
            raise ValueError(f"ObsSpec.type: expected 'low_dim' or 'rgb', got {self.type!r}")


class Expert(Protocol):
    """A scripted demonstrator. ``reset(seed)`` starts an episode (its own choices reseeded when a seed is
    given); ``act(obs, env)`` returns the env's next action. ``env`` is the env as ``make`` built it, so a
    privileged expert may read the simulator through ``env.unwrapped``."""

    def reset(self, seed: int | None = None) -> None: ...

    def act(self, obs: Mapping[str, np.ndarray], env: gym.Env) -> np.ndarray: ...


def success_flag(key: str) -> Callable[[Mapping[str, Any]], bool]:
    """``info[key]`` as a success flag (missing: not yet successful)."""

    def success(info: Mapping[str, Any]) -> bool:
        return bool(info.get(key, False))

    return success


@dataclass(frozen=True)
class EnvSpec:
    """What the library needs to know about an environment, and how to make it.

    ``make(obs_keys=(), image_size=None, render_size=None)`` returns a gymnasium env whose observations
    are dicts holding at least ``obs_keys`` (each as ``obs[key]`` describes it; rgb keys at
    ``image_size`` pixels square when that is set), whose ``reset(seed=s)`` starts the same episode for
    the same ``s``, whose actions are ``(action_dim,)`` float arrays, and whose ``render()`` gives RGB
    frames ``render_size`` pixels square when that is set (``None``: the env's own sizes).
    """

    name: str
    make: Callable[..., gym.Env]
    obs: Mapping[str, ObsSpec]  # every key the env's observation dict can hold
    action_dim: int
    max_episode_steps: int
    success: Callable[[Mapping[str, Any]], bool]  # from a step's info
    default_obs_keys: tuple[str, ...]  # what a policy observes unless env.obs_keys says otherwise
    # an episode's score is the max over its steps of step_score(reward, info); None: the success flag
    step_score: Callable[[float, Mapping[str, Any]], float] | None = None
    score_name: str = "success rate"  # how reports label the episode score
    score_range: tuple[float, float] = (0.0, 1.0)
    make_expert: Callable[[int | None], Expert] | None = None  # scripted demonstrator, if any
    demo_keys: tuple[str, ...] = ()  # low-dim keys a demonstration store records (rgb ones when asked)
    # rollouts step their episodes in this many worker processes (0: all in this process); an env
    # whose step or render is slow gains from workers, a fast one loses to the messages
    rollout_workers: int = 0

    def __post_init__(self) -> None:
        if not self.obs:
            raise ValueError(f"EnvSpec({self.name}).obs: expected at least one observation key")
        if not self.default_obs_keys:
            raise ValueError(f"EnvSpec({self.name}).default_obs_keys: expected at least one observation key")
        self.check_obs_keys(self.default_obs_keys)
        for key in self.demo_keys:
            if key not in self.obs or self.obs[key].type != "low_dim":
                raise ValueError(f"EnvSpec({self.name}).demo_keys: {key!r} is not a low_dim observation of the env")
        at_least(f"EnvSpec({self.name})", self, 1, "action_dim", "max_episode_steps")
        check_workers(self.rollout_workers, f"EnvSpec({self.name}).rollout_workers")
        low, high = self.score_range
        if not low < high:
            raise ValueError(f"EnvSpec({self.name}).score_range: expected (low, high) with low < high, got {self.score_range}")

    @property
    def obs_shapes(self) -> dict[str, tuple[int, ...]]:
        return {key: spec.shape for key, spec in self.obs.items()}

    def check_obs_keys(self, keys: Iterable[str]) -> None:
        """Refuse observation keys this env's observation dict does not hold."""
        for key in keys:
            if key not in self.obs:
                raise ValueError(f"env.obs_keys: {key!r} is not an observation of {self.name} ({sorted(self.obs)})")

    def rgb_keys(self, keys: Iterable[str]) -> list[str]:
        return [key for key in keys if self.obs[key].type == "rgb"]

    def record_keys(self, obs_keys: Sequence[str]) -> list[str]:
        """The observation keys a demonstration store for a policy observing ``obs_keys`` records: the
        env's ``demo_keys`` (all low-dim keys when unset) and the requested rgb keys."""
        low_dim = list(self.demo_keys) or [k for k, s in self.obs.items() if s.type == "low_dim"]
        return low_dim + [k for k in self.rgb_keys(obs_keys) if k not in low_dim]

    def score(self, reward: float, info: Mapping[str, Any]) -> float:
        """One step's contribution to the episode score (the episode's is the max over its steps)."""
        return float(self.step_score(reward, info)) if self.step_score else float(self.success(info))
