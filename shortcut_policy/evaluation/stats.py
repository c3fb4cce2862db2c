"""Small statistics used in evaluation reports."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval of a success rate; well-behaved at 0/n and n/n, unlike the normal one."""
    if n <= 0:
        raise ValueError(f"n: expected >= 1 trials, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes: expected 0..{n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile_ms(samples_s: list[float] | np.ndarray, q: float) -> float:
    """The q-th percentile of durations given in seconds, in milliseconds."""
    return float(np.percentile(np.asarray(samples_s) * 1e3, q))


def mean_ci95(values: list[float] | np.ndarray) -> float | None:
    """Half-width of the two-sided 95% Student-t interval of the mean (n - 1 degrees of freedom);
    None for one value, where there is no interval."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return None
    return float(stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
