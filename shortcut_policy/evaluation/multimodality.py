"""How spread out a policy's action chunks are for one observation: distances between chunks of actions.

Used by ``benchmarks/multimodality.py``; chunks are (..., T, A) arrays of executed actions.
"""

from __future__ import annotations

import numpy as np


def chunk_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS over actions of the per-action Euclidean distance; a (..., T, A), b (..., T, A) -> (...)."""
    return np.sqrt(((a - b) ** 2).sum(-1).mean(-1))


def spread(samples: np.ndarray) -> np.ndarray:
    """samples (N, K, T, A) -> (N,): RMS distance of the K samples from their mean."""
    return np.sqrt((chunk_distance(samples, samples.mean(1, keepdims=True)) ** 2).mean(1))


def off_sample_distance(samples: np.ndarray, reference: np.ndarray, same: bool) -> np.ndarray:
    """(N,): mean over samples of the distance to the nearest reference sample (another one if ``same``)."""
    d = chunk_distance(samples[:, :, None], reference[:, None])  # (N, K, K_ref)
    if same:
        d = d + np.where(np.eye(d.shape[1], dtype=bool), np.inf, 0.0)[None]
    return d.min(-1).mean(-1)


def roughness(chunks: np.ndarray) -> np.ndarray:
    """(..., T, A) -> (...): RMS length of the second difference a[i+1] - 2 a[i] + a[i-1] along the chunk."""
    second = chunks[..., 2:, :] - 2 * chunks[..., 1:-1, :] + chunks[..., :-2, :]
    return np.sqrt((second**2).sum(-1).mean(-1))
