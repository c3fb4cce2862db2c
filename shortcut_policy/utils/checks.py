"""Checks of config values, written once for every config dataclass and the modules that validate their own inputs."""

from __future__ import annotations

import math
from typing import Any


def at_least(prefix: str, config: Any, minimum: int, *names: str) -> None:
    """One error naming ``prefix.name`` for the first of ``config``'s fields ``names`` below ``minimum``
    (or NaN, or infinite)."""
    for name in names:
        value = getattr(config, name)
        if not value >= minimum or value == math.inf:  # "not >=": NaN compares false to everything
            raise ValueError(f"{prefix + '.' if prefix else ''}{name}: expected >= {minimum}, got {value}")


def check_ema(power: float, max_decay: float) -> None:
    """The warm-up power must be positive and the decay a fraction below 1 (``train.ema_*``)."""
    if not 0 < power < math.inf:
        raise ValueError(f"train.ema_power: expected > 0, got {power}")
    if not 0 <= max_decay < 1:
        raise ValueError(f"train.ema_max_decay: expected a value in [0, 1), got {max_decay}")


def check_workers(workers: Any, field: str = "rollout_workers") -> int:
    """A number of worker processes: an integer >= 0, where 0 means this process."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"{field}: expected an integer >= 0 (0: in this process), got {workers!r}")
    return workers
