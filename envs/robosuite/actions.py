"""Absolute end-effector actions for robosuite's OSC_POSE controller, as Diffusion Policy trains its best
robomimic policies (its ``abs_action``).

A delta action says "move 5 cm and turn this much from where the hand is now"; the absolute action says
where the controller's goal is. A policy predicting a chunk of absolute goals does not accumulate its own
errors step by step. The rotation is written as the first two rows of the goal's rotation matrix (6
numbers, Zhou et al. 2019), continuous where axis-angle wraps around:

    absolute action (10,) = [goal position (3), rotation 6-d (6), gripper (1)]

The conversion asks the controller itself: for each recorded step, the simulator is put in the recorded
state and the controller computes the goal the delta action sets; the same controller, told to take
absolute input, then drives to that goal, so replaying the converted actions repeats the recording.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

ABS_ACTION_DIM = 10
DELTA_ACTION_DIM = 7


def matrix_to_rot6d(matrix: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 6): the first two rows."""
    return np.asarray(matrix)[..., :2, :].reshape(*np.shape(matrix)[:-2], 6)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """(..., 6) -> (..., 3, 3): Gram-Schmidt on the two rows, the third their cross product. Any 6 numbers
    whose two halves are not parallel give a rotation, so a policy's imprecise output still does."""
    rot6d = np.asarray(rot6d, dtype=np.float64)
    a, b = rot6d[..., :3], rot6d[..., 3:]
    norm_a = np.linalg.norm(a, axis=-1, keepdims=True)
    r1 = a / np.maximum(norm_a, 1e-12)
    b = b - np.sum(r1 * b, axis=-1, keepdims=True) * r1
    r2 = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    r3 = np.cross(r1, r2)
    return np.stack([r1, r2, r3], axis=-2)


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> axis-angle (3,), what robosuite's absolute OSC input takes."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(matrix).as_rotvec()


def absolute_to_controller(action: np.ndarray) -> np.ndarray:
    """(10,) absolute action -> (7,) input of an OSC_POSE controller with absolute input:
    [position, axis-angle, gripper]."""
    action = np.asarray(action, dtype=np.float64)
    return np.concatenate([action[:3], matrix_to_rotvec(rot6d_to_matrix(action[3:9])), action[9:10]])


class AbsoluteActionConverter:
    """Delta actions of a recorded demo -> absolute ones, from its simulator states (``states`` (T, S),
    ``actions`` (T, 7) -> (T, 10)). Built from the file's ``env_args``: its task and controller."""

    def __init__(self, env_args: Mapping[str, Any]) -> None:
        from .env import build_from_env_args

        self._env = build_from_env_args(env_args, absolute=False)
        robot = self._env.robots[0]
        self._composite = robot.composite_controller
        self._arm = robot.part_controllers["right"]
        if type(self._arm).__name__ != "OperationalSpaceController":
            raise ValueError(f"abs_action: converting needs an OSC_POSE arm controller, the file's env_args use "
                             f"{type(self._arm).__name__}")

    def __call__(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if actions.ndim != 2 or actions.shape[1] != DELTA_ACTION_DIM:
            raise ValueError(f"actions: expected (steps, {DELTA_ACTION_DIM}) delta actions, got shape {actions.shape}")
        sim = self._env.sim
        width = 1 + sim.model.nq + sim.model.nv  # time, qpos, qvel
        if states.ndim != 2 or states.shape[1] != width:
            raise ValueError(f"states: expected (steps, {width}) flattened states of {self._env.__class__.__name__} "
                             f"(time, qpos, qvel), got shape {states.shape}: was it recorded with another model?")
        out = np.empty((len(actions), ABS_ACTION_DIM))
        for i, (state, action) in enumerate(zip(states, actions)):
            sim.set_state_from_flattened(state)
            sim.forward()
            self._composite.update_state()  # the arm's base pose: goals are in its frame
            self._arm.update(force=True)
            self._arm.set_goal(np.asarray(action[:6], dtype=np.float64))
            out[i, :3] = self._arm.goal_pos
            out[i, 3:9] = matrix_to_rot6d(self._arm.goal_ori)
            out[i, 9] = action[6]
        return out

    def close(self) -> None:
        self._env.close()
