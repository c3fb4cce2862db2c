"""The environments the library knows, by name."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from .spec import EnvSpec

ENVS: dict[str, EnvSpec] = {}


def register_env(spec: EnvSpec) -> EnvSpec:
    """Make ``spec`` known by its name (an env folder calls this on import; a test may call it too)."""
    if spec.name in ENVS and ENVS[spec.name] is not spec:
        raise ValueError(f"env {spec.name!r} is already registered")
    ENVS[spec.name] = spec
    return spec


def get_env_spec(name: str) -> EnvSpec:
    if name not in ENVS:
        raise ValueError(f"env.name: expected one of {sorted(ENVS)}, got {name!r}")
    return ENVS[name]


def resolve_env(env: "str | EnvSpec") -> EnvSpec:
    """A configured spec as it is; a name: that env with its default task and episode length."""
    return env if isinstance(env, EnvSpec) else get_env_spec(env).configure()


def make_env(name: str, **kwargs: Any) -> gym.Env:
    """Build a registered environment: ``make_env("push_t", obs_keys=["keypoint"], render_size=256)``,
    ``make_env("metaworld", task="reach-v3")``."""
    return get_env_spec(name).make(**kwargs)
