"""shortcut-policy: one-step diffusion policies for robot control, built on shortcut models.

    from shortcut_policy import load_policy, make_env
    policy = load_policy("outputs/push_t/<run>/policy.safetensors")
    action = policy.act(obs, steps=1)
"""

from .envs import make_env
from .policy import Policy, load_policy

__version__ = "0.1.0"
__all__ = ["Policy", "load_policy", "make_env", "__version__"]
