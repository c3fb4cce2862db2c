"""How smooth the executed actions are: the jerk of an episode's action sequence.

Jerk here is the mean norm of the second difference of the actions the env was given,
||a[k+1] - 2 a[k] + a[k-1]||, in the env's action units (Push-T: pixels). Where actions are target
positions (Push-T, robosuite's absolute mode) this is the change of the commanded velocity per tick,
an acceleration in the strict sense; the name follows how robot-learning evaluations report it.
A policy whose chunks carry
its sampling noise is rough inside every chunk; one that is smooth inside chunks but disagrees with
itself from one chunk to the next is rough at their boundaries. Both show in this number, which a
score can hide: a noisy arm still reaches the block.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def action_jerk(actions: Sequence[np.ndarray] | np.ndarray) -> float | None:
    """Mean ||a[k+1] - 2 a[k] + a[k-1]|| over an episode's actions (T, A); None for fewer than 3 actions."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"actions: expected an array (T, action_dim), got shape {a.shape}")
    if len(a) < 3:
        return None
    second = a[2:] - 2.0 * a[1:-1] + a[:-2]  # (T - 2, A)
    value = float(np.linalg.norm(second, axis=1).mean())
    if not np.isfinite(value):
        raise ValueError("actions: the executed actions hold a non-finite value; their jerk is undefined")
    return value


def mean_jerk(per_episode: Sequence[float | None]) -> float | None:
    """The mean over the episodes that have a jerk (3 actions or more); None when none has."""
    values = [j for j in per_episode if j is not None]
    return float(np.mean(values)) if values else None
