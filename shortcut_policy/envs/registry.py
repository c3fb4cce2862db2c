"""A small registry of the environments the library knows, by name: ``make_env("push_t")``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import gymnasium as gym

from . import push_t


@dataclass(frozen=True)
class EnvSpec:
    """What training and evaluation need to know about an environment without building it."""

    name: str
    make: Callable[..., gym.Env]
    obs_shapes: dict[str, tuple[int, ...]]  # every key the env's observation dict can hold
    action_dim: int
    max_episode_steps: int
    make_expert: Callable[[int | None], Any] | None = None  # scripted demonstrator, if any
    image_key: str = "img"

    def check_obs_keys(self, keys: Iterable[str]) -> None:
        """Refuse observation keys this env's observation dict does not hold."""
        for key in keys:
            if key not in self.obs_shapes:
                raise ValueError(f"env.obs_keys: {key!r} is not an observation of {self.name} ({sorted(self.obs_shapes)})")


ENVS: dict[str, EnvSpec] = {
    "push_t": EnvSpec(
        name="push_t",
        make=push_t.make_push_t,
        obs_shapes={"state": (5,), "keypoint": (18,), "img": (push_t.IMAGE_SIZE, push_t.IMAGE_SIZE, 3)},
        action_dim=2,
        max_episode_steps=push_t.MAX_EPISODE_STEPS,
        make_expert=push_t.make_push_t_expert,
    ),
}


def get_env_spec(name: str) -> EnvSpec:
    if name not in ENVS:
        raise ValueError(f"env.name: expected one of {sorted(ENVS)}, got {name!r}")
    return ENVS[name]


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """Build a registered environment, e.g. ``make_env("push_t", image=True)``."""
    return get_env_spec(name).make(**kwargs)
