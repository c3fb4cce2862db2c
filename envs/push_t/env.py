"""Push-T (gym-pusht 0.1.8) with the library's observation dictionary.

Observations (all float64 except ``img``):
  * ``state``    (5,):  [agent_x, agent_y, block_x, block_y, block_angle] as gym-pusht reports it.
  * ``keypoint`` (18,): the 8 corners of the T's two rectangles (x0, y0, ..., x7, y7) followed by
    the agent position. This is the low-dimensional policy's input. We use keypoints rather than
    the raw pose because the angle wraps at 2*pi (a discontinuity a network must not see) and
    keypoints put position and orientation on one pixel scale. The 8 corners are exactly
    gym-pusht's ``environment_state`` (and LeRobot's), computed here from ``state`` so that a store
    with only ``state`` can be converted. Diffusion Policy's original used 9 keypoints (20-d); any
    set of >= 2 non-collinear points fixes the pose, so 8 corners carry the same information.
  * ``agent_pos`` (2,): the agent's position, what Diffusion Policy's Push-T image task observes beside the image.
  * ``img`` (96, 96, 3) uint8, only when ``obs_keys`` holds it: gym-pusht's observation rendering.
"""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# T geometry in the block's local frame (gym-pusht's add_tee, scale 30, length 4): the bar's and the
# stem's rectangle corners, in the order gym-pusht's get_keypoints reports them (pymunk's order).
T_LOCAL_CORNERS = np.array(
    [
        [-60.0, 0.0], [60.0, 0.0], [60.0, 30.0], [-60.0, 30.0],  # bar
        [-15.0, 30.0], [15.0, 30.0], [15.0, 120.0], [-15.0, 120.0],  # stem
    ]
)  # (8, 2)
MAX_EPISODE_STEPS = 300
IMAGE_SIZE = 96


def keypoints_from_state(state: np.ndarray) -> np.ndarray:
    """(..., 5) Push-T states -> (..., 18) keypoint observations (T corners, then agent xy)."""
    state = np.asarray(state, dtype=np.float64)
    angle = state[..., 4]
    cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]  # (..., 1)
    lx, ly = T_LOCAL_CORNERS[:, 0], T_LOCAL_CORNERS[:, 1]  # (8,)
    x = state[..., 2:3] + cos * lx - sin * ly  # (..., 8)
    y = state[..., 3:4] + sin * lx + cos * ly
    corners = np.stack([x, y], axis=-1).reshape(*state.shape[:-1], 16)
    return np.concatenate([corners, state[..., 0:2]], axis=-1)


class PushTObservations(gym.ObservationWrapper):
    """Turns gym-pusht's ``state`` observation into the library's dict of ``state``/``keypoint``/``agent_pos``/``img``."""

    def __init__(self, env: gym.Env, image: bool = False) -> None:
        super().__init__(env)
        self.image = image
        space = {
            "state": spaces.Box(-np.inf, np.inf, (5,), np.float64),
            "keypoint": spaces.Box(-np.inf, np.inf, (18,), np.float64),
            "agent_pos": spaces.Box(-np.inf, np.inf, (2,), np.float64),
        }
        if image:
            size = (env.unwrapped.observation_height, env.unwrapped.observation_width, 3)
            space["img"] = spaces.Box(0, 255, size, np.uint8)
        self.observation_space = spaces.Dict(space)

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        state = np.asarray(observation, dtype=np.float64)
        obs = {"state": state, "keypoint": keypoints_from_state(state), "agent_pos": state[:2].copy()}
        if self.image:
            obs["img"] = self.env.unwrapped._render(visualize=False)  # gym-pusht's observation image
        return obs


def make_push_t(
    obs_keys: Sequence[str] = (), image_size: int | None = None, render_size: int | None = None,
    max_episode_steps: int | None = None, render_mode: str = "rgb_array", image: bool = False, **gym_kwargs,
) -> gym.Env:
    """gym-pusht's PushT-v0 (300-step limit, or ``max_episode_steps``) with the library's observation dict (the env contract's ``make``).

    ``img`` is rendered only when ``obs_keys`` asks for it (or ``image=True``, the older spelling),
    ``image_size`` pixels square (default 96); ``render_size`` sets the size of ``render()``'s frames
    (gym-pusht's default is 680). Other keyword arguments go to gym-pusht's PushTEnv (``damping``, ...).
    """
    import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)

    sizes = {}
    if image_size is not None:
        sizes.update(observation_width=image_size, observation_height=image_size)
    if render_size is not None:
        sizes.update(visualization_width=render_size, visualization_height=render_size)
    env = gym.make(
        "gym_pusht/PushT-v0",
        obs_type="state",
        render_mode=render_mode,
        max_episode_steps=max_episode_steps or MAX_EPISODE_STEPS,
        disable_env_checker=True,
        **sizes,
        **gym_kwargs,
    )
    return PushTObservations(env, image=image or "img" in obs_keys)
