"""A Meta-World v3 task with the library's observation dict, reproducible starts, and episodes that end
at the first success.

Meta-World's own seeding does not give reproducible episodes: ``reset(seed=)`` is ignored, and its MT1
benchmark draws one of 50 fixed start/goal variants at random on each reset. Here ``reset(seed=s)``
reseeds the task's own random draw of object and goal positions (``_random_reset_space``, the draw
Meta-World uses to build its variants), so seed ``s`` always gives the same start and goal, and
different seeds give different ones: demonstration seeds (from 100000) never share a start with test
seeds (from 0). The goal is part of the observation (Meta-World's fully observable setting, as MT1).

Observations: ``state`` (39,) float64, Meta-World's vector: hand xyz, gripper opening, two objects'
xyz + quaternion, the same 18 values from the previous step, and the goal xyz; ``hand`` (4,), its first
four (what a robot knows of itself); ``corner_image`` (84, 84, 3) uint8, the ``corner`` camera (the
videos' view), rendered only when ``obs_keys`` asks for it.

Frames are right side up. MuJoCo renders a camera's own view; Meta-World defines its ``corner`` cameras
rolled half a turn (their image's up axis points down the world's z), so their views are turned 180
degrees here. Image stores made before that turn hold mirrored views: make them again.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .tasks import DEFAULT_TASK, TASKS

MAX_EPISODE_STEPS = 500  # Meta-World's path length
STATE_DIM = 39
ACTION_DIM = 4  # end-effector xyz displacement and gripper effort, each in [-1, 1]
HAND_DIM = 4  # hand xyz and gripper opening: the start of the state vector
CAMERA = "corner"
IMAGE_KEY = f"{CAMERA}_image"
IMAGE_SIZE = 84  # as robomimic's image datasets
INSTALL_HINT = 'pip install -e ".[metaworld]"  (metaworld==3.1.1 with mujoco==3.3.0)'


def import_metaworld():
    """metaworld, or an error that says how to install it."""
    # MuJoCo reads MUJOCO_GL when it first makes a rendering context; EGL renders without a display
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import metaworld  # noqa: F401
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"env=metaworld needs the metaworld extra ({err}); install it with: {INSTALL_HINT}") from None
    return ALL_V3_ENVIRONMENTS


class MetaWorldEnv(gym.Env):
    """One Meta-World task; see the module docstring. ``render()`` gives ``render_size`` square RGB frames
    from ``camera`` (right side up)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}

    def __init__(self, task: str, max_episode_steps: int = MAX_EPISODE_STEPS, end_on_success: bool = True,
                 render_size: int | None = None, camera: str = CAMERA, image_size: int | None = None) -> None:
        if task not in TASKS:
            raise ValueError(f"env.task: expected a Meta-World v3 task, one of {list(TASKS)}, got {task!r}")
        if max_episode_steps < 1:
            raise ValueError(f"env.max_episode_steps: expected >= 1, got {max_episode_steps}")
        size = render_size or 256
        self.task = task
        self.max_episode_steps = max_episode_steps
        self.end_on_success = end_on_success
        self.render_mode = "rgb_array"
        self._sim = import_metaworld()[task](render_mode="rgb_array", camera_name=camera, width=size, height=size)
        self._sim.max_path_length = max_episode_steps  # Meta-World refuses a step past its own limit
        self._sim._partially_observable = False  # the goal is observed, as in MT1
        self._sim.__dict__.pop("sawyer_observation_space", None)  # a cached space computed without the goal
        self._sim._set_task_called = True  # starts come from reset(seed=) below, not from set_task
        # CPU rendering: the shadow map and multisampling make frames many times slower; they must be off
        # before the first render
        self._sim.model.vis.quality.shadowsize = 0
        self._sim.model.vis.quality.offsamples = 0
        space = {"state": spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float64),
                 "hand": spaces.Box(-np.inf, np.inf, (HAND_DIM,), np.float64)}
        self._image_renderer = None  # the image observation's renderer, apart from render()'s (another size)
        if image_size is not None:  # gymnasium's renderer, as the sim's: it reads MUJOCO_GL when made, not when
            # mujoco was imported (mujoco's own Renderer would need MUJOCO_GL set before any import of mujoco)
            from gymnasium.envs.mujoco.mujoco_rendering import MujocoRenderer

            self._image_renderer = MujocoRenderer(self._sim.model, self._sim.data, width=image_size, height=image_size,
                                                  camera_name=CAMERA)
            space[IMAGE_KEY] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(space)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._steps = 0
        self._reset_done = False
        self._half_turn: dict[str, bool] = {}  # camera -> whether its view is turned 180 degrees
        self._render_camera = camera

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._sim.seed(int(seed))  # the sim's np_random, from which the start below is drawn
        elif not self._reset_done:
            raise ValueError("reset: expected a seed for the first episode (Meta-World starts are drawn from it)")
        self._sim._freeze_rand_vec = False
        self._sim.seeded_rand_vec = True  # draw object and goal positions from the sim's np_random
        obs, info = self._sim.reset()
        self._steps = 0
        self._reset_done = True
        return self._observe(obs), info

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        obs, reward, _, truncated, info = self._sim.step(action)
        self._steps += 1
        terminated = self.end_on_success and bool(info["success"])
        truncated = bool(truncated) or self._steps >= self.max_episode_steps
        return self._observe(obs), float(reward), terminated, truncated, info

    def _observe(self, state: np.ndarray) -> dict[str, np.ndarray]:
        state = np.asarray(state, dtype=np.float64)
        obs = {"state": state, "hand": state[:HAND_DIM].copy()}
        if self._image_renderer is not None:
            obs[IMAGE_KEY] = self._upright(self._image_renderer.render("rgb_array"), CAMERA)
        return obs

    def render(self) -> np.ndarray:
        return self._upright(self._sim.render(), self._render_camera)

    def _upright(self, frame: np.ndarray, camera: str) -> np.ndarray:
        """A camera's view (top row first) with the world's up at the top: turned half a turn when the
        camera's up axis points down. Decided at the camera's first frame, so a camera on the moving arm
        does not flip mid-episode."""
        if camera not in self._half_turn:
            up = self._sim.data.cam_xmat[self._sim.model.camera(camera).id].reshape(3, 3)[:, 1]  # image up, world frame
            self._half_turn[camera] = bool(up[2] < 0)
        return np.ascontiguousarray(frame[::-1, ::-1] if self._half_turn[camera] else frame)

    def close(self) -> None:
        if self._image_renderer is not None:
            self._image_renderer.close()
        self._sim.close()


def make_metaworld(
    task: str = DEFAULT_TASK, obs_keys: Sequence[str] = (), image_size: int | None = None, render_size: int | None = None,
    max_episode_steps: int | None = None, end_on_success: bool = True,
) -> MetaWorldEnv:
    """The env contract's ``make`` for Meta-World (``task`` is bound by ``EnvSpec.configure``)."""
    image = (image_size or IMAGE_SIZE) if IMAGE_KEY in obs_keys else None
    return MetaWorldEnv(task, max_episode_steps or MAX_EPISODE_STEPS, end_on_success, render_size, image_size=image)
