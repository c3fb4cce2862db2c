"""Detour: a point must reach a goal straight ahead with a disc in the way, around it on either side.

A small, fast control task whose demonstrations are bimodal by construction: from the start the
expert goes left or right of the disc with equal chance, so the mean of its actions (straight ahead)
runs into the disc, where the point is stopped. A policy that averages the modes, as one step of flow
matching does, stalls at the disc; one that picks a mode and keeps to it succeeds.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MAX_EPISODE_STEPS = 60
STEP = 0.08  # the largest move per step, per axis
DISC_RADIUS = 0.35  # the disc sits at the origin
START_Y, GOAL_Y = -0.75, 0.75  # start and goal on the disc's axis, each jittered by JITTER
JITTER = 0.05
REACHED = 0.08  # success: the point within this distance of the goal
FRAME = 64  # rendered frame size (pixels)


class DetourEnv(gym.Env):
    """Observations ``pos`` and ``goal`` (2,) in [-1, 1]^2; actions: a move (2,), each axis clipped to
    [-STEP, STEP]. A move that would end inside the disc is not made (the point stays)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_size: int | None = None) -> None:
        self.observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "goal": spaces.Box(-1, 1, (2,))})
        self.action_space = spaces.Box(-STEP, STEP, (2,))
        self.render_size = render_size or FRAME
        self.pos = np.array([0.0, START_Y])
        self.goal = np.array([0.0, GOAL_Y])

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pos": self.pos.astype(np.float32), "goal": self.goal.astype(np.float32)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        jitter = self.np_random.uniform(-JITTER, JITTER, (2, 2))
        self.pos = np.array([0.0, START_Y]) + jitter[0]
        self.goal = np.array([0.0, GOAL_Y]) + jitter[1]
        return self._obs(), {"reached": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.isfinite(action).all():
            raise ValueError(f"action: expected 2 finite numbers, got {action!r}")
        moved = np.clip(self.pos + np.clip(action, -STEP, STEP), -1.0, 1.0)
        blocked = np.linalg.norm(moved) < DISC_RADIUS
        if not blocked:
            self.pos = moved
        distance = float(np.linalg.norm(self.pos - self.goal))
        reached = distance < REACHED
        return self._obs(), -distance, reached, False, {"reached": reached, "blocked": bool(blocked)}

    def render(self) -> np.ndarray:
        n = self.render_size
        grid = (np.stack(np.meshgrid(np.arange(n), np.arange(n)), -1) + 0.5) / n * 2 - 1  # (n, n, 2) x, y
        grid[..., 1] *= -1  # image rows run down, y runs up
        frame = np.full((n, n, 3), 255, np.uint8)
        frame[np.linalg.norm(grid, axis=-1) < DISC_RADIUS] = (128, 128, 128)
        frame[np.linalg.norm(grid - self.goal, axis=-1) < REACHED] = (40, 180, 40)
        frame[np.linalg.norm(grid - self.pos, axis=-1) < 0.04] = (220, 40, 40)
        return frame


def make_detour(obs_keys=(), image_size=None, render_size=None, max_episode_steps=None) -> gym.Env:
    """The contract's ``make`` (module level, so that rollout worker processes can be handed it)."""
    return gym.wrappers.TimeLimit(DetourEnv(render_size), max_episode_steps or MAX_EPISODE_STEPS)
