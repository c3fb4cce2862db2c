"""Environments by name. Each folder here fills in the contract in ``spec.py`` and registers itself; every
folder is imported here, so adding one edits no file of this package (simulators are imported only when
an env is made).

    from shortcut_policy.envs import get_env_spec, make_env
    env = make_env("push_t")
    env = make_env("metaworld", task="reach-v3")
"""

import importlib
import pkgutil

from . import push_t
from .registry import ENVS, get_env_spec, make_env, register_env, resolve_env
from .spec import DemoRecorder, EnvSpec, Expert, ObsSpec, success_flag

for _folder in pkgutil.iter_modules(__path__):
    if _folder.ispkg:  # each env folder registers itself on import
        importlib.import_module(f"{__name__}.{_folder.name}")

DEFAULT_ENV = push_t.SPEC.name  # what a run trains on unless env.name says otherwise

__all__ = ["DEFAULT_ENV", "ENVS", "DemoRecorder", "EnvSpec", "Expert", "ObsSpec", "get_env_spec", "make_env", "register_env",
           "resolve_env", "success_flag"]
