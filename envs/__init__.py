"""Environments by name. Each folder here fills in the contract in ``spec.py`` and registers itself.

    from shortcut_policy.envs import get_env_spec, make_env
    env = make_env("push_t")
    env = make_env("metaworld", task="reach-v3")
"""

from . import detour, metaworld, push_t, robosuite  # noqa: F401  (each registers itself; simulators are imported only when made)
from .registry import ENVS, get_env_spec, make_env, register_env, resolve_env
from .spec import EnvSpec, Expert, ObsSpec, success_flag

DEFAULT_ENV = push_t.SPEC.name  # what a run trains on unless env.name says otherwise

__all__ = ["DEFAULT_ENV", "ENVS", "EnvSpec", "Expert", "ObsSpec", "get_env_spec", "make_env", "register_env", "resolve_env", "success_flag"]
