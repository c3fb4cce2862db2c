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
    return chunk_jerk(actions, [])["jerk"]


def chunk_jerk(actions: Sequence[np.ndarray] | np.ndarray, chunk_starts: Sequence[int],
               scale: np.ndarray | None = None) -> dict[str, float | None]:
    """An episode's jerk split at its chunk boundaries: ``boundary``, the mean second-difference norm over the
    windows that hold actions of two chunks (centred on the last action of one chunk and on the first of
    the next), and ``interior``, over the rest; ``jerk`` over all. ``chunk_starts``: the ticks whose
    action began a chunk (tick 0 begins the episode, not a boundary). ``scale`` (A,) multiplies each
    action dimension first (the policy's normalization: jerk in its [-1, 1] units). None where no
    window falls in a part."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"actions: expected an array (T, action_dim), got shape {a.shape}")
    if scale is not None:
        a = a * np.asarray(scale, dtype=np.float64)
    if len(a) < 3:
        return {"jerk": None, "boundary": None, "interior": None}
    norms = np.linalg.norm(a[2:] - 2.0 * a[1:-1] + a[:-2], axis=1)  # (T - 2,): window i is centred on a[i + 1]
    if not np.isfinite(norms).all():
        raise ValueError("actions: the executed actions hold a non-finite value; their jerk is undefined")
    at_boundary = np.zeros(len(norms), dtype=bool)
    for b in chunk_starts:
        if b >= 1:  # centred on a[b - 1] (window b - 2) and on a[b] (window b - 1)
            at_boundary[[i for i in (b - 2, b - 1) if 0 <= i < len(norms)]] = True

    def mean(values: np.ndarray) -> float | None:
        return float(values.mean()) if len(values) else None

    return {"jerk": mean(norms), "boundary": mean(norms[at_boundary]), "interior": mean(norms[~at_boundary])}


def mean_jerk(per_episode: Sequence[float | None]) -> float | None:
    """The mean over the episodes that have a jerk (3 actions or more); None when none has."""
    values = [j for j in per_episode if j is not None]
    return float(np.mean(values)) if values else None
