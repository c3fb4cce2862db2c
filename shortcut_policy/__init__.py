"""shortcut-policy: one-step diffusion policies for robot control, built on shortcut models.

    from shortcut_policy import load_policy, make_env
    policy = load_policy("outputs/push_t/<run>/policy.safetensors")
    action = policy.act(obs, steps=1)
"""

import importlib.util

if importlib.util.find_spec(f"{__name__}.envs") is None:
    raise ImportError("shortcut_policy.envs not found: the top-level envs/ folder is mapped into the package by its "
                      "install; install it (pip install -e .) rather than putting the checkout on PYTHONPATH")

from . import envs  # noqa: E402

if getattr(envs, "__file__", None) is None:  # a namespace package: an empty folder hides the mapped envs/
    raise ImportError(
        f"shortcut_policy.envs resolved to {list(envs.__path__)}, an empty folder left by an older version "
        "(environments now live in the top-level envs/): delete it, then reinstall (pip install -e .)"
    )

from .envs import make_env  # noqa: E402
from .policy import Policy, load_policy  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Policy", "load_policy", "make_env", "__version__"]
