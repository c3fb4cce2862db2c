"""A robosuite 1.5 task (Lift, Can, Square; one Panda arm) with robomimic's observation names, seeded
starts, and episodes that end at the first success.

Observations, as robomimic's datasets name them, so a policy trained on a user's robomimic file rolls
out here unchanged:

- ``robot0_eef_pos`` (3), ``robot0_eef_quat`` (4), ``robot0_gripper_qpos`` (2): the hand and fingers;
- ``object`` (Lift 10, Can and Square 14): the object's position and quaternion, then its offset from
  the hand (position, and for Can and Square the relative quaternion), robomimic's ``object``;
- ``agentview_image``, ``robot0_eye_in_hand_image``: uint8 (84, 84, 3) camera images, right side up
  (robosuite renders them upside down; robomimic flips them, and so does this env). Rendered only when
  a policy observes them: a camera costs most of a step.

Actions: robomimic's OSC_POSE controller at 20 Hz, delta (7: position, axis-angle, gripper, in
[-1, 1]) or absolute (10: see ``actions.py``) with ``env.options.absolute_actions=true``.

``reset(seed=s)`` reseeds the one random generator robosuite draws the object placement and the arm's
initial joint noise from, so seed ``s`` always gives the same episode, whatever ran before it in the same
process or in another. Two things make that hold: the model is built once, from seed 0 (robosuite draws
some of it at random, such as Lift's cube size, which then stays the same in every episode; rebuilding
the model per episode would make every reset slow), and the gripper's command ramp, which robosuite's
soft reset keeps, is zeroed.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Mapping, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .actions import ABS_ACTION_DIM, DELTA_ACTION_DIM, absolute_to_controller

TASKS = {"lift": "Lift", "can": "PickPlaceCan", "square": "NutAssemblySquare"}  # ours -> robosuite's env name
# robomimic's ``object``, in its files' order (robosuite <= 1.4's object-state). robosuite 1.5 concatenates
# Can's and Square's in another order (the offsets from the hand first), so it is assembled here by name.
OBJECT_KEYS = {
    "lift": ("cube_pos", "cube_quat", "gripper_to_cube_pos"),
    "can": ("Can_pos", "Can_quat", "Can_to_robot0_eef_pos", "Can_to_robot0_eef_quat"),
    "square": ("SquareNut_pos", "SquareNut_quat", "SquareNut_to_robot0_eef_pos", "SquareNut_to_robot0_eef_quat"),
}
OBJECT_DIM = {"lift": 10, "can": 14, "square": 14}
MAX_EPISODE_STEPS = {"lift": 400, "can": 400, "square": 500}
LOW_DIM = {"robot0_eef_pos": (3,), "robot0_eef_quat": (4,), "robot0_gripper_qpos": (2,)}
CAMERAS = ("agentview", "robot0_eye_in_hand")
IMAGE_SIZE = 84  # robomimic's image datasets
CONTROL_FREQ = 20
ROBOSUITE_TYPE = 1  # robomimic's EnvType for robosuite, in a file's env_args["type"]
DEFAULT_TASK = "lift"
INSTALL_HINT = 'pip install -e ".[robosuite]"  (robosuite==1.5.2 with mujoco==3.3.0)'

# robomimic's arm controller (its datasets' env_args): OSC_POSE, 5 cm and 0.5 rad per step at full input
OSC_POSE = {
    "type": "OSC_POSE", "input_max": 1, "input_min": -1,
    "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5], "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
    "kp": 150, "damping_ratio": 1, "impedance_mode": "fixed", "kp_limits": [0, 300], "damping_ratio_limits": [0, 10],
    "position_limits": None, "orientation_limits": None, "uncouple_pos_ori": True, "input_type": "delta",
    "input_ref_frame": "base", "interpolation": None, "ramp_ratio": 0.2,
}

CONTROLLER = {"type": "BASIC", "body_parts": {"right": {**OSC_POSE, "gripper": {"type": "GRIP"}}}}  # robosuite 1.5's form


def import_robosuite():
    """robosuite, or an error that says how to install it."""
    os.environ.setdefault("MUJOCO_GL", "egl")  # render without a display
    try:
        import robosuite
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(f"env=robosuite needs the robosuite extra ({err}); install it with: {INSTALL_HINT}") from None
    return robosuite


def image_key(camera: str) -> str:
    return f"{camera}_image"


def env_args_for(task: str, cameras: Sequence[str] = (), image_size: int = IMAGE_SIZE) -> dict:
    """robomimic's ``env_args`` for one of our tasks: what the experts' files record, and what a file's
    are checked against."""
    robosuite = import_robosuite()
    return {
        "env_name": TASKS[task],
        "type": ROBOSUITE_TYPE,
        "env_version": robosuite.__version__,
        "env_kwargs": {
            "robots": ["Panda"], "controller_configs": copy.deepcopy(CONTROLLER),
            "control_freq": CONTROL_FREQ, "has_renderer": False, "has_offscreen_renderer": bool(cameras),
            "ignore_done": True, "use_object_obs": True, "use_camera_obs": bool(cameras), "camera_names": list(cameras),
            "camera_heights": image_size, "camera_widths": image_size, "camera_depths": False, "reward_shaping": False,
        },
    }


def _controller(env_kwargs: Mapping[str, Any], absolute: bool | None) -> dict:
    """The file's controller as robosuite 1.5 takes it: a robosuite <= 1.4 arm config (robomimic's public
    files) becomes a composite one; the arm's input set to absolute or delta (None: as recorded)."""
    from robosuite.controllers.composite.composite_controller_factory import refactor_composite_controller_config

    config = copy.deepcopy(env_kwargs.get("controller_configs") or CONTROLLER)
    robots = env_kwargs.get("robots", ["Panda"])
    robot = robots[0] if isinstance(robots, (list, tuple)) else robots
    config = refactor_composite_controller_config(config, robot, ["right"])
    arm = _arm(config)
    if arm is None or arm.get("type") != "OSC_POSE":
        raise ValueError(f"env_args: expected an OSC_POSE arm controller (robomimic's), got {arm and arm.get('type')}")
    if "control_delta" in arm:  # robosuite <= 1.4's name for input_type
        arm["input_type"] = "delta" if arm.pop("control_delta") else "absolute"
    if "damping" in arm:  # and for damping_ratio
        arm["damping_ratio"] = arm.pop("damping")
        arm["damping_ratio_limits"] = arm.pop("damping_limits", arm.get("damping_ratio_limits"))
    if absolute is not None:
        arm["input_type"] = "absolute" if absolute else "delta"
    return config


def _arm(config: Mapping[str, Any]) -> dict | None:
    """The right arm's part of a composite controller config (robosuite 1.5 nests it under ``arms`` in its
    robots' defaults, not in a converted 1.4 config)."""
    parts = config.get("body_parts", {})
    return parts.get("right") or parts.get("arms", {}).get("right")


# what a recording's arm controller must share with the env's for its actions to mean the same here
_SAME = ("input_max", "input_min", "output_max", "output_min", "kp", "damping_ratio", "impedance_mode", "uncouple_pos_ori")


def build_from_env_args(env_args: Mapping[str, Any], absolute: bool, cameras: Sequence[str] = (),
                        image_size: int = IMAGE_SIZE) -> Any:
    """A robosuite env as a robomimic file's ``env_args`` describe it (the controller converted to robosuite
    1.5's form), observing ``cameras``."""
    if env_args.get("type", ROBOSUITE_TYPE) != ROBOSUITE_TYPE:
        raise ValueError(f"env_args.type: expected {ROBOSUITE_TYPE} (a robosuite env), got {env_args.get('type')!r}")
    robosuite = import_robosuite()
    kwargs = dict(env_args.get("env_kwargs", {}))
    kwargs["controller_configs"] = _controller(kwargs, absolute)
    kwargs.update(has_renderer=False, has_offscreen_renderer=bool(cameras), use_camera_obs=bool(cameras),
                  camera_names=list(cameras) or "agentview", camera_heights=image_size, camera_widths=image_size,
                  ignore_done=True, hard_reset=False, seed=0)  # one model, the same in every process
    kwargs.pop("camera_depths", None)
    return robosuite.make(env_args["env_name"], **kwargs)


def check_store(attrs: Mapping[str, Any], task: str | None, options: Mapping[str, Any]) -> None:
    """Refuse a store whose ``env_args`` (an imported robomimic file's, or the expert's) name a setup the
    rollouts here would not reproduce: another task, robot, control rate, arm controller or its gains and
    limits."""
    env_args = attrs.get("env_args")
    if not env_args:
        return
    task = task or DEFAULT_TASK
    if env_args.get("env_name") != TASKS[task]:
        raise ValueError(f"env_args.env_name: the store was recorded in {env_args.get('env_name')!r}, "
                         f"env.task={task} rolls out in {TASKS[task]!r}")
    kwargs = env_args.get("env_kwargs", {})
    robots = kwargs.get("robots", ["Panda"])
    if (robots if isinstance(robots, str) else list(robots)) not in ("Panda", ["Panda"]):
        raise ValueError(f"env_args.env_kwargs.robots: the store was recorded with {robots}, the env has ['Panda']")
    if kwargs.get("control_freq", CONTROL_FREQ) != CONTROL_FREQ:
        raise ValueError(f"env_args.env_kwargs.control_freq: the store was recorded at {kwargs['control_freq']} Hz, "
                         f"the env acts at {CONTROL_FREQ} Hz")
    import_robosuite()
    arm = _arm(_controller(kwargs, None))  # refuses a controller other than OSC_POSE
    if arm.get("input_type", "delta") != "delta":
        raise ValueError("env_args.env_kwargs.controller_configs: the store was recorded with absolute controller input; "
                         "expected delta actions (absolute ones come from converting them: import_robomimic abs_action=true)")
    for key in _SAME:
        ours = OSC_POSE[key]
        if key not in arm:
            continue
        same = arm[key] == ours if isinstance(ours, (str, bool)) else np.allclose(np.asarray(arm[key], float), np.asarray(ours, float))
        if not same:
            raise ValueError(f"env_args.env_kwargs.controller_configs.{key}: the store was recorded with {arm[key]}, "
                             f"the env's controller has {OSC_POSE[key]}")


class RobosuiteEnv(gym.Env):
    """One robosuite task; see the module docstring."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(self, task: str, obs_keys: Sequence[str] = (), image_size: int | None = None,
                 render_size: int | None = None, max_episode_steps: int | None = None,
                 absolute_actions: bool = False, env_args: Mapping[str, Any] | None = None,
                 end_on_success: bool = True) -> None:
        if task not in TASKS:
            raise ValueError(f"env.task: expected one of {list(TASKS)}, got {task!r}")
        self.task = task
        self.cameras = [c for c in CAMERAS if image_key(c) in obs_keys]
        self.image_size = image_size or IMAGE_SIZE
        self.render_size = render_size or 256
        self.max_episode_steps = max_episode_steps or MAX_EPISODE_STEPS[task]
        self.absolute = absolute_actions
        self.end_on_success = end_on_success
        self.render_mode = "rgb_array"
        env_args = env_args or env_args_for(task, self.cameras, self.image_size)
        self.env_args = env_args  # what a robomimic file of this env's episodes records
        if env_args.get("env_name") != TASKS[task]:
            raise ValueError(f"env_args.env_name: expected {TASKS[task]} for env.task={task}, got {env_args.get('env_name')!r}")
        self._env = build_from_env_args(env_args, absolute_actions, self.cameras, self.image_size)
        obs = {key: spaces.Box(-np.inf, np.inf, shape, np.float64) for key, shape in LOW_DIM.items()}
        obs["object"] = spaces.Box(-np.inf, np.inf, (OBJECT_DIM[task],), np.float64)
        for camera in self.cameras:
            obs[image_key(camera)] = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
        self.observation_space = spaces.Dict(obs)
        dim = ABS_ACTION_DIM if absolute_actions else DELTA_ACTION_DIM
        self.action_space = spaces.Box(-np.inf if absolute_actions else -1.0, np.inf if absolute_actions else 1.0, (dim,), np.float64)
        self._steps = 0

    def _observation(self, raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {key: np.asarray(raw[key], dtype=np.float64) for key in LOW_DIM}
        obs["object"] = np.concatenate([np.asarray(raw[key], dtype=np.float64) for key in OBJECT_KEYS[self.task]])
        for camera in self.cameras:
            obs[image_key(camera)] = np.ascontiguousarray(raw[image_key(camera)][::-1])  # robosuite's are upside down
        return obs

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:  # one generator, shared by the placement samplers and the robot: reseeded in place
            self._env.rng.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
        # robosuite's soft reset (no model reload) keeps Python-side state from the last episode: the
        # gripper's command ramps from where it was. Zeroed, an episode depends on its seed alone.
        for robot in self._env.robots:
            for gripper in robot.gripper.values():
                gripper.current_action = np.zeros(gripper.dof)
        self._env.reset()
        # robosuite 1.5's reset returns the object observations of Can and Square as zeros: read them anew
        raw = self._env._get_observations(force_update=True)
        self._steps = 0
        return self._observation(raw), {"success": False}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action: expected shape {self.action_space.shape}, got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise FloatingPointError(f"action: expected finite numbers, got {action}")
        command = absolute_to_controller(action) if self.absolute else np.clip(action, -1.0, 1.0)
        raw, reward, _, _ = self._env.step(command)
        self._steps += 1
        success = bool(self._env._check_success())
        terminated = self.end_on_success and success
        truncated = self._steps >= self.max_episode_steps
        return self._observation(raw), float(reward), terminated, truncated, {"success": success}

    def flat_state(self) -> np.ndarray:
        """The simulator state as robomimic's files hold it (``states``): time, qpos, qvel."""
        return np.asarray(self._env.sim.get_state().flatten())

    @property
    def sim(self) -> Any:
        """robosuite's simulator (experts read object poses from it)."""
        return self._env.sim

    @property
    def robosuite_env(self) -> Any:
        return self._env

    def render(self) -> np.ndarray:
        """The agent view, ``render_size`` square, right side up (robosuite's own offscreen context: it picks
        a headless GL backend itself)."""
        sim = self._env.sim
        if sim._render_context_offscreen is None:  # no camera observed: made on the first frame asked for
            from robosuite.utils.binding_utils import MjRenderContextOffscreen

            MjRenderContextOffscreen(sim, device_id=-1)  # it registers itself with the simulator
            sim._render_context_offscreen.vopt.geomgroup[0] = 0  # visual meshes, not collision ones (robosuite's default)
            sim._render_context_offscreen.vopt.geomgroup[1] = 1
        frame = sim.render(width=self.render_size, height=self.render_size, camera_name="agentview")
        return np.ascontiguousarray(frame[::-1])

    def close(self) -> None:
        self._env.close()


def make_robosuite(task: str = DEFAULT_TASK, obs_keys: Sequence[str] = (), image_size: int | None = None,
                   render_size: int | None = None, max_episode_steps: int | None = None,
                   absolute_actions: bool = False, end_on_success: bool = True) -> RobosuiteEnv:
    """The env contract's ``make`` for robosuite (``task`` and the options bound by ``EnvSpec.configure``)."""
    return RobosuiteEnv(task, obs_keys, image_size, render_size, max_episode_steps, absolute_actions, None, end_on_success)
