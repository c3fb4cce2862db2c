"""Environments by name, with observation dicts the policy understands."""

from .registry import ENVS, EnvSpec, get_env_spec, make_env

__all__ = ["ENVS", "EnvSpec", "get_env_spec", "make_env"]
