"""Meta-World's own scripted policies (``metaworld.policies``) behind the contract's expert interface."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .env import import_metaworld


class MetaWorldExpert:
    """The shipped hand-written policy of one task; it reads the full 39-d state (goal included)."""

    def __init__(self, task: str) -> None:
        import_metaworld()
        from metaworld.policies import ENV_POLICY_MAP

        self.task = task
        self._policy = ENV_POLICY_MAP[task]()

    def reset(self, seed: int | None = None) -> None:
        """The shipped policies are deterministic and stateless: nothing to reseed."""

    def act(self, obs: Mapping[str, np.ndarray], env=None) -> np.ndarray:
        return np.clip(np.asarray(self._policy.get_action(obs["state"]), dtype=np.float64), -1.0, 1.0)
