"""The detour expert: a fair coin per episode picks the side; it heads for a waypoint beside the disc,
then for the goal, at full speed. It reads only the observation."""

from __future__ import annotations

import numpy as np

from .env import DISC_RADIUS, STEP

WAYPOINT_X = DISC_RADIUS + 0.25  # beside the disc, clear of it by 0.25
PASSED = 0.05  # the waypoint counts as reached within this distance (the last move lands on it)


class DetourExpert:
    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.side = 1.0
        self.passed = False

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.side = float(self.rng.choice([-1.0, 1.0]))  # the two modes, with equal chance
        self.passed = False

    def act(self, obs, env=None) -> np.ndarray:
        pos, goal = np.asarray(obs["pos"], np.float64), np.asarray(obs["goal"], np.float64)
        waypoint = np.array([self.side * WAYPOINT_X, 0.0])
        self.passed = self.passed or np.linalg.norm(pos - waypoint) < PASSED
        target = goal if self.passed else waypoint
        move = target - pos  # straight at the target, at most STEP long (a per-axis clip would bend the line)
        return (move * min(1.0, STEP / max(float(np.linalg.norm(move)), 1e-9))).astype(np.float32)
