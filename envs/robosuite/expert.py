"""Scripted experts for Lift, Can and Square: privileged pick-and-place from the simulator's object poses.

robosuite ships no scripted policy. These follow waypoints computed every step from where the object is
now (closed loop), and act through the same delta OSC_POSE controller as robomimic's operators: the
position error becomes the position action, the rotation from the hand's orientation to the wanted one
becomes the axis-angle action.

- **Lift**: above the cube, fingers turned to its faces; down; close; lift.
- **Can**: above the can; down around it; close; up over the bin wall; over the can's compartment of
  the other bin; down; open.
- **Square**: above the nut's handle, fingers across it; down; close; up; turn the nut square to the
  peg while carrying it over; down over the peg; open.

Each episode draws its own style from the seed (grasp point offset, approach height, speed, how long
the fingers close, the lift height), so the demonstrations are not one trajectory repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from scipy.spatial.transform import Rotation

POS_SCALE = 0.05  # metres per unit of position action (robomimic's OSC_POSE output_max)
ROT_SCALE = 0.5  # radians per unit of rotation action
OPEN, CLOSE = -1.0, 1.0


def down_facing(finger_yaw: float) -> np.ndarray:
    """The hand's site frame pointing straight down, its fingers opening along ``finger_yaw`` in the table
    plane: x = the finger axis, z = down, y = z x x."""
    x = np.array([np.cos(finger_yaw), np.sin(finger_yaw), 0.0])
    z = np.array([0.0, 0.0, -1.0])
    return np.stack([x, np.cross(z, x), z], axis=1)


def yaw_of(quat_xyzw: np.ndarray) -> float:
    return float(Rotation.from_quat(quat_xyzw).as_euler("xyz")[2])


def nearest_turn(angle: float, reference: float, period: float) -> float:
    """``angle`` plus a multiple of ``period``, as close as possible to ``reference``."""
    return angle + period * np.round((reference - angle) / period)


@dataclass
class Style:
    """One episode's way of doing the task."""

    grasp_offset: np.ndarray  # (2,) metres off the grasp point, in the table plane
    approach_height: float  # above the grasp point before going down
    gain: float  # position action per 5 cm of error
    close_steps: int
    carry_height: float


class RobosuiteExpert:
    """See the module docstring. ``act`` needs the env ``make`` built (it reads the simulator)."""

    def __init__(self, task: str, seed: int | None = None) -> None:
        from .env import TASKS

        if task not in TASKS:
            raise ValueError(f"env.task: expected one of {list(TASKS)}, got {task!r}")
        self.task = task
        self.reset(seed)

    def reset(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        r = self._rng
        self.style = Style(
            grasp_offset=r.uniform(-0.004, 0.004, 2),
            approach_height=float(r.uniform(0.06, 0.12)),
            gain=float(r.uniform(0.7, 1.0)),
            close_steps=int(r.integers(8, 14)),
            carry_height=float(r.uniform(0.12, 0.18)),
        )
        self._phase = 0
        self._count = 0
        self._yaw: float | None = None  # the finger yaw chosen at the start, kept while carrying
        self._handle_goal: float | None = None  # Square: where the nut's handle points when it goes down
        self._rest_z = np.inf  # the object's height on the table, to tell a missed grasp
        self.retries = 0

    # ------------------------------------------------------------------ reading the simulator
    @staticmethod
    def _sim(env: Any) -> Any:
        return env.unwrapped.robosuite_env

    def _hand(self, rs: Any) -> tuple[np.ndarray, np.ndarray]:
        site = rs.robots[0].eef_site_id["right"]
        return np.array(rs.sim.data.site_xpos[site]), np.array(rs.sim.data.site_xmat[site]).reshape(3, 3)

    def _hand_yaw(self, rs: Any) -> float:
        """Where the finger axis (the hand site's x) points in the table plane."""
        _, mat = self._hand(rs)
        return float(np.arctan2(mat[1, 0], mat[0, 0]))

    def _move(self, rs: Any, target: np.ndarray, yaw: float, gripper: float) -> tuple[np.ndarray, float, float]:
        """The delta action toward ``target`` with the fingers at ``yaw``; also the position and rotation errors."""
        pos, mat = self._hand(rs)
        error = target - pos
        rotation = Rotation.from_matrix(down_facing(yaw) @ mat.T).as_rotvec()
        base = np.array(rs.robots[0].part_controllers["right"].origin_ori)  # actions are in the arm base's frame
        action = np.empty(7)
        action[:3] = np.clip(base.T @ error / POS_SCALE * self.style.gain, -1.0, 1.0)
        action[3:6] = np.clip(base.T @ rotation / ROT_SCALE, -1.0, 1.0)
        action[6] = gripper
        return action, float(np.linalg.norm(error)), float(np.linalg.norm(rotation))

    def _step_phase(self, done: bool) -> None:
        self._count += 1
        if done:
            self._phase += 1
            self._count = 0

    # ------------------------------------------------------------------ acting
    def act(self, obs: Mapping[str, np.ndarray], env: Any) -> np.ndarray:
        rs = self._sim(env)
        if self.task == "lift":
            return self._lift(rs)
        if self.task == "can":
            return self._can(rs)
        return self._square(rs)

    def _pick(self, rs: Any, grasp: np.ndarray, yaw: float, lift_to: float, object_z: float = np.inf) -> np.ndarray | None:
        """Phases 0-3, shared: above, down, close, up to ``lift_to``; None once up. Once up, an object still
        near the table (``object_z``) was missed: start again from above it."""
        style = self.style
        above = grasp + np.array([0.0, 0.0, style.approach_height])
        if self._phase == 0:
            action, err, rot = self._move(rs, above, yaw, OPEN)
            self._step_phase((err < 0.01 and rot < 0.08) or self._count > 80)
            return action
        if self._phase == 1:
            action, err, _ = self._move(rs, grasp, yaw, OPEN)
            self._step_phase(err < 0.006 or self._count > 60)
            return action
        if self._phase == 2:
            action, _, _ = self._move(rs, grasp, yaw, CLOSE)
            self._step_phase(self._count >= style.close_steps)
            return action
        if self._phase == 3:
            pos, _ = self._hand(rs)
            target = np.array([pos[0], pos[1], lift_to])
            action, err, _ = self._move(rs, target, yaw, CLOSE)
            self._step_phase(err < 0.015 or self._count > 60)
            if self._phase == 4 and object_z < self._rest_z + 0.03:  # missed: again, from the top
                self._phase, self._yaw, self._handle_goal, self.retries = 0, None, None, self.retries + 1
            return action
        return None

    def _release(self, rs: Any, yaw: float) -> np.ndarray:
        """Open where the hand is, then rise clear: robosuite counts a placement only with the hand more
        than about 4 cm from the object."""
        pos, _ = self._hand(rs)
        if self._phase == 6:
            if self._count == 0:
                self._release_at = pos
            action, _, _ = self._move(rs, self._release_at, yaw, OPEN)
            self._step_phase(self._count >= 6)
            return action
        action, _, _ = self._move(rs, self._release_at + np.array([0.0, 0.0, 0.12]), yaw, OPEN)
        return action

    @staticmethod
    def _object(rs: Any, body: int) -> tuple[np.ndarray, np.ndarray]:
        """A body's position and quaternion (x, y, z, w)."""
        return np.array(rs.sim.data.body_xpos[body]), np.array(rs.sim.data.body_xquat[body])[[1, 2, 3, 0]]

    def _lift(self, rs: Any) -> np.ndarray:
        cube, cube_quat = self._object(rs, rs.cube_body_id)
        if self._yaw is None:
            self._yaw = nearest_turn(yaw_of(cube_quat), self._hand_yaw(rs), np.pi / 2)
            self._grasp = np.append(self.style.grasp_offset, 0.0)
        if self._phase < 2:
            self._hold = cube + self._grasp
        action = self._pick(rs, self._hold, self._yaw, cube[2] + 0.2)
        if action is None:
            action, _, _ = self._move(rs, self._hand(rs)[0], self._yaw, CLOSE)
        return action

    def _can(self, rs: Any) -> np.ndarray:
        can, _ = self._object(rs, rs.obj_body_id["Can"])
        carry_z = rs.bin2_pos[2] + 0.08 + self.style.carry_height  # over the bin walls, within the arm's reach
        if self._yaw is None:
            self._yaw = self._hand_yaw(rs)  # a cylinder: any yaw grips it
            self._grasp = np.append(self.style.grasp_offset, 0.01)
            # the can's compartment, aimed a little toward the robot from its centre: its far corner is at
            # the edge of the arm's reach
            self._goal = np.array(rs.target_bin_placements[rs.object_to_id["can"]]) + np.array([-0.04, -0.04, 0.0])
            self._goal[:2] += self._rng.uniform(-0.015, 0.015, 2)
            self._rest_z = min(self._rest_z, can[2])
        if self._phase < 2:
            self._hold = can + self._grasp
        action = self._pick(rs, self._hold, self._yaw, carry_z, can[2])
        if action is not None:
            return action
        if self._phase == 4:  # over the compartment
            target = np.array([self._goal[0], self._goal[1], carry_z])
            action, err, _ = self._move(rs, target, self._yaw, CLOSE)
            self._step_phase(err < 0.02 or self._count > 120)
            return action
        if self._phase == 5:  # down into it
            target = np.array([self._goal[0], self._goal[1], self._goal[2] + 0.14])
            action, err, _ = self._move(rs, target, self._yaw, CLOSE)
            self._step_phase(err < 0.015 or self._count > 60)
            return action
        return self._release(rs, self._yaw)

    def _square(self, rs: Any) -> np.ndarray:
        sim = rs.sim
        handle = np.array(sim.data.site_xpos[sim.model.site_name2id("SquareNut_handle_site")])
        center = np.array(sim.data.site_xpos[sim.model.site_name2id("SquareNut_center_site")])
        carry_z = rs.table_offset[2] + self.style.carry_height + 0.1
        if self._yaw is None:
            along = center - handle
            across = float(np.arctan2(along[1], along[0])) + np.pi / 2  # fingers close across the handle
            self._yaw = nearest_turn(across, self._hand_yaw(rs), np.pi)
            self._grasp = np.array([0.0, 0.0, 0.0])
            self._rest_z = min(self._rest_z, center[2])
        if self._phase < 2:
            self._hold = handle + self._grasp
        action = self._pick(rs, self._hold, self._yaw, carry_z, center[2])
        if action is not None:
            return action
        peg = np.array(sim.data.body_xpos[rs.peg1_body_id])
        pos, _ = self._hand(rs)
        # the nut carried with its handle toward the robot or to a side (never away: the hand would be out of
        # reach over the peg), whichever is the smallest turn; the handle lies along one of the nut's sides,
        # so the nut is then square to the peg too
        handle_dir = handle - center
        angle = float(np.arctan2(handle_dir[1], handle_dir[0]))
        if self._handle_goal is None:
            self._handle_goal = min((np.pi / 2, np.pi, -np.pi / 2), key=lambda g: abs(np.angle(np.exp(1j * (angle - g)))))
        turn = float(np.angle(np.exp(1j * (angle - self._handle_goal))))
        self._carry_yaw = self._hand_yaw(rs) - turn
        offset = pos - center  # the hand relative to the nut's centre, as held
        over = np.array([peg[0] + offset[0], peg[1] + offset[1], carry_z])
        if self._phase == 4:  # over the peg, nut turned
            action, _, _ = self._move(rs, over, self._carry_yaw, CLOSE)
            off = np.linalg.norm(center[:2] - peg[:2])
            self._step_phase((off < 0.004 and abs(turn) < 0.03) or self._count > 150)
            return action
        if self._phase == 5:  # down over the peg
            target = np.array([over[0], over[1], rs.table_offset[2] + 0.03 + offset[2]])
            action, err, _ = self._move(rs, target, self._carry_yaw, CLOSE)
            self._step_phase(err < 0.01 or self._count > 80)
            return action
        return self._release(rs, self._carry_yaw)
