"""Scripted Push-T demonstrator (privileged: it reads the simulator state).

Why it works (see PLATFORM.md, "Push-T physics that matters for a scripted expert"):

* Pusher/block contact is frictionless, so a push acts along the face normal only.
* ``space.damping == 0`` zeroes the block velocity every substep: the block moves only while it is
  pushed, so one push can be predicted analytically (mass 1, inertia 3000 about the centre of
  gravity at local (0, 45)).

Design:

1. Candidate contacts are sampled along the eight faces of the T outline (block frame).
2. Every step each candidate push is rolled out analytically for growing push depths; the best depth
   is the one that minimises the mean keypoint distance to the goal pose.
3. Candidates are scored by keypoint-distance reduction per pixel of (travel + push + overhead).
   The expert commits to a contact and only switches when another is clearly better (hysteresis),
   or when the committed one is exhausted. Near-equal candidates are picked at random (seeded), so
   the demonstrations are multimodal.
4. Travel goes around an inflated convex hull of the T (no grazing); the side (clockwise or
   counter-clockwise) is chosen once per travel, at random when both sides are about as long.
5. The commanded target is a "carrot" a bounded distance ahead along the planned path, rate-limited
   to ``max_target_step`` pixels per control step, so target trajectories are smooth by design.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import shapely.geometry as sg

from .env import T_LOCAL_CORNERS

# --- Environment constants (gym-pusht 0.1.8) -------------------------------------------------
PUSHER_RADIUS = 15.0
BLOCK_MASS = 1.0
BLOCK_INERTIA = 3000.0  # pymunk body.moment, about the centre of gravity
COG_LOCAL = np.array([0.0, 45.0])  # centre of gravity of the T in its own frame
ACTION_LOW, ACTION_HIGH = 0.0, 512.0
WALL_INNER_LOW, WALL_INNER_HIGH = 7.0, 504.0  # wall segments at 5 / 506 with radius 2
DEFAULT_GOAL_POSE = np.array([256.0, 256.0, np.pi / 4])

# T geometry in the block frame: crossbar [-60, 60] x [0, 30], stem [-15, 15] x [30, 120].
T_KEYPOINTS = T_LOCAL_CORNERS  # the 8 corners the observation uses, shared with env.py
T_RECTS = np.array([[0.0, 15.0, 60.0, 15.0], [0.0, 75.0, 15.0, 45.0]])  # centre x, y, half w, h
T_HULL = [(-60, 0), (60, 0), (60, 30), (15, 120), (-15, 120), (-60, 30)]

# Faces of the T outline: (origin, tangent, outward normal, valid contact range along the
# tangent). Ranges keep the pusher circle touching only that face (concave corners excluded).
_FACES = [
    ((-60, 0), (1, 0), (0, -1), (0, 120)),  # top of the crossbar
    ((60, 0), (0, 1), (1, 0), (0, 30)),  # right end of the crossbar
    ((15, 30), (1, 0), (0, 1), (15, 45)),  # right underside of the crossbar
    ((15, 30), (0, 1), (1, 0), (15, 90)),  # right side of the stem
    ((-15, 120), (1, 0), (0, 1), (0, 30)),  # bottom of the stem
    ((-15, 30), (0, 1), (-1, 0), (15, 90)),  # left side of the stem
    ((-60, 30), (1, 0), (0, 1), (0, 30)),  # left underside of the crossbar
    ((-60, 0), (0, 1), (-1, 0), (0, 30)),  # left end of the crossbar
]

# Push rollout: increments of push depth (px). Fine near zero because success needs ~2 px.
PUSH_DEPTH_INCREMENTS = np.array([0.5] * 4 + [1.0] * 4 + [2.0] * 4 + [3.0] * 4 + [4.0] * 3)
SEGMENT_SAMPLES = 12  # points used to check a straight travel segment for clearance
HULL_ARC_QUAD_SEGS = 4  # rounding of the inflated hull's corners (segments per quarter circle)


@dataclass
class ExpertTuning:
    """Tunable parameters; pass any of them as keyword arguments to ``PushTExpert``."""

    contact_spacing: float = 5.0  # px between candidate contacts along a face
    approach_gap: float = 3.0  # px between pusher and face at the start of a push
    hull_margin: float = 12.0  # px of clearance beyond the pusher radius when going around the T
    lookahead: float = 30.0  # px the carrot runs ahead of the agent along the path
    max_target_step: float = 25.0  # px the commanded target may move per control step
    score_overhead: float = 25.0  # px added to travel + push when scoring (favours big gains)
    switch_ratio: float = 1.5  # while pushing, another contact must score this many times better
    switch_ratio_travelling: float = 3.0  # stricter on the way to a contact: no changes of mind
    near_equal_ratio: float = 0.85  # candidates scoring >= ratio * best are picked at random
    route_tie_ratio: float = 1.3  # both route sides count as equal when within this length ratio
    preferred_side_prob: float = 0.75  # chance to take the episode's preferred side on a tie
    min_gain: float = 0.02  # px of keypoint-distance reduction below which a push is useless
    on_ray_tolerance: float = 4.0  # px: agent this close to the push line counts as pushing
    stall_steps: int = 40  # steps without progress before the current contact is banned
    stall_progress: float = 0.2  # px of keypoint-distance improvement that counts as progress
    ban_steps: int = 30  # how long a stalled contact stays banned


def _rot(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _t_sdf(points: np.ndarray) -> np.ndarray:
    """Signed distance (block frame) from points (..., 2) to the T; negative inside."""
    q = np.abs(points[..., None, :] - T_RECTS[:, :2]) - T_RECTS[:, 2:]
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(np.max(q, axis=-1), 0.0)
    return np.min(outside + inside, axis=-1)


class PushTExpert:
    """Scripted Push-T demonstrator. Privileged: reads the simulator state."""

    def __init__(self, seed: int | None = None, **tuning) -> None:
        names = {f.name for f in fields(ExpertTuning)}
        unknown = set(tuning) - names
        if unknown:
            raise TypeError(f"unknown tuning parameters: {sorted(unknown)}")
        for name, value in tuning.items():  # numbers only: a string or a bool would fail mid-episode
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"tuning parameter {name}: expected a number, got {value!r}")
        self.cfg = ExpertTuning(**tuning)
        self._build_geometry()
        self.rng = np.random.default_rng(seed)
        self.reset()

    # ------------------------------------------------------------------ set-up
    def _build_geometry(self) -> None:
        """Precompute everything that is fixed in the block frame."""
        cfg = self.cfg
        contacts, normals, tangents, origins, ranges = [], [], [], [], []
        for origin, tangent, normal, (lo, hi) in _FACES:
            n_pts = max(2, int(round((hi - lo) / cfg.contact_spacing)) + 1)
            for u in np.linspace(lo, hi, n_pts):
                contacts.append(np.add(origin, np.multiply(tangent, u)))
                normals.append(normal)
                tangents.append(tangent)
                origins.append(origin)
                ranges.append((lo, hi))
        self.c_local = np.array(contacts, dtype=float)
        self.n_local = np.array(normals, dtype=float)
        self.t_local = np.array(tangents, dtype=float)
        self.o_local = np.array(origins, dtype=float)
        self.u_range = np.array(ranges, dtype=float)
        self.face_normals = np.array([f[2] for f in _FACES], dtype=float)
        self.face_origins = np.array([f[0] for f in _FACES], dtype=float)
        self.face_tangents = np.array([f[1] for f in _FACES], dtype=float)
        self.face_lengths = np.array([120, 30, 45, 90, 30, 90, 45, 30], dtype=float)

        # Inflated convex hull (counter-clockwise), used for routing around the T.
        hull = sg.Polygon(T_HULL).buffer(PUSHER_RADIUS + cfg.hull_margin, quad_segs=HULL_ARC_QUAD_SEGS)
        hull = sg.polygon.orient(hull, sign=1.0)
        verts = np.array(hull.exterior.coords)[:-1]
        self.hull_v = verts
        edges = np.roll(verts, -1, axis=0) - verts
        self.hull_len = np.linalg.norm(edges, axis=1)
        self.hull_dir = edges / self.hull_len[:, None]
        self.hull_out = np.stack([self.hull_dir[:, 1], -self.hull_dir[:, 0]], axis=1)  # outward (CCW)
        self.hull_cum = np.concatenate([[0.0], np.cumsum(self.hull_len)[:-1]])
        self.hull_perim = float(self.hull_len.sum())

        # Approach point A (push starts here) and staging point S (first point of the normal ray
        # outside the inflated hull) for every candidate.
        self.a_local = self.c_local + self.n_local * (PUSHER_RADIUS + cfg.approach_gap)
        exit_t = np.array([self._ray_exit(c, n) for c, n in zip(self.c_local, self.n_local)])
        self.s_local = self.c_local + self.n_local * (exit_t + 1.0)[:, None]
        self.s_arc = np.array([self._arc_param(s)[0] for s in self.s_local])
        self.sa_len = np.linalg.norm(self.s_local - self.a_local, axis=1)

    def _ray_exit(self, origin: np.ndarray, direction: np.ndarray) -> float:
        """Distance along a ray (starting inside the inflated hull) to the hull boundary."""
        best = np.inf
        for v, out in zip(self.hull_v, self.hull_out):
            denom = float(direction @ out)
            if denom > 1e-9:
                best = min(best, float((v - origin) @ out) / denom)
        return max(best, 0.0)

    def _arc_param(self, p: np.ndarray) -> tuple[float, float, bool]:
        """(arc position of the nearest hull-boundary point, distance to it, inside the hull?)."""
        rel = p - self.hull_v
        t = np.clip(np.sum(rel * self.hull_dir, axis=1), 0.0, self.hull_len)
        proj = self.hull_v + self.hull_dir * t[:, None]
        d = np.linalg.norm(p - proj, axis=1)
        k = int(np.argmin(d))
        inside = bool(np.all(np.sum(rel * self.hull_out, axis=1) < 0.0))
        return float(self.hull_cum[k] + t[k]), float(d[k]), inside

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode; reseed the generator when a seed is given."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.contact: int | None = None  # committed candidate index
        self.side: int = 0  # committed route side for the current travel: +1 CCW, -1 CW, 0 none
        self.preferred_side = 1 if self.rng.random() < 0.5 else -1
        self.prev_target: np.ndarray | None = None
        self.banned_until = np.zeros(len(self.c_local), dtype=int)
        self.step_count = 0
        self.best_cost = np.inf
        self.last_progress_step = 0
        # Episode counters: contacts committed to, and commitments dropped for a better contact.
        self.stats = {"contacts": 0, "preempted": 0, "preempted_travelling": 0, "stalls": 0}
        self.pushing = False  # agent is on the committed contact's push line

    # ------------------------------------------------------------------ prediction
    def _keypoint_cost(self, pos: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Mean keypoint distance (px) to the goal for poses pos (..., 2), theta (...)."""
        c, s = np.cos(theta)[..., None], np.sin(theta)[..., None]
        kx = pos[..., None, 0] + c * T_KEYPOINTS[:, 0] - s * T_KEYPOINTS[:, 1]
        ky = pos[..., None, 1] + s * T_KEYPOINTS[:, 0] + c * T_KEYPOINTS[:, 1]
        return np.mean(np.hypot(kx - self.goal_kp[:, 0], ky - self.goal_kp[:, 1]), axis=-1)

    def _rollout_pushes(self, pos: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
        """Best cost and best push depth for every candidate contact (analytic quasi-static push).

        The pusher moves along the initial inward normal; each increment the block takes the
        frictionless impulse that removes the penetration, j = pen / (1/m + (r x n)^2 / I).
        Written component-wise (x and y arrays) because this is the expert's hot loop.
        """
        k = len(self.c_local)
        cx, cy = self.c_local[:, 0], self.c_local[:, 1]
        nx, ny = self.n_local[:, 0], self.n_local[:, 1]
        tx, ty = self.t_local[:, 0], self.t_local[:, 1]
        ox, oy = self.o_local[:, 0], self.o_local[:, 1]
        u_lo, u_hi = self.u_range[:, 0] - 1.0, self.u_range[:, 1] + 1.0
        kpx, kpy = T_KEYPOINTS[:, 0], T_KEYPOINTS[:, 1]
        gx, gy = self.goal_kp[:, 0], self.goal_kp[:, 1]
        c0, s0 = np.cos(theta), np.sin(theta)
        # Pusher start (touching) and fixed world push direction (inward normal at the start).
        lx, ly = cx + nx * PUSHER_RADIUS, cy + ny * PUSHER_RADIUS
        px, py = c0 * lx - s0 * ly + pos[0], s0 * lx + c0 * ly + pos[1]
        dx, dy = -(c0 * nx - s0 * ny), -(s0 * nx + c0 * ny)
        bx, by, th = np.full(k, pos[0]), np.full(k, pos[1]), np.full(k, theta)
        alive = np.ones(k, dtype=bool)
        best_cost = np.full(k, np.inf)
        best_depth = np.zeros(k)
        depth = 0.0
        for inc in PUSH_DEPTH_INCREMENTS:
            depth += inc
            px, py = px + dx * inc, py + dy * inc
            c, s = np.cos(th), np.sin(th)
            rx, ry = px - bx, py - by
            qx, qy = c * rx + s * ry, -s * rx + c * ry  # pusher in the block frame
            d = (qx - ox) * nx + (qy - oy) * ny
            u = (qx - ox) * tx + (qy - oy) * ty
            alive &= (u >= u_lo) & (u <= u_hi)
            pen = np.maximum(PUSHER_RADIUS - d, 0.0)
            # Lever arm (contact point minus centre of gravity) in the world frame.
            ax, ay = qx - nx * d - COG_LOCAL[0], qy - ny * d - COG_LOCAL[1]
            rwx, rwy = c * ax - s * ay, s * ax + c * ay
            nwx, nwy = c * nx - s * ny, s * nx + c * ny
            rxn = rwx * nwy - rwy * nwx
            j = pen / (1.0 / BLOCK_MASS + rxn * rxn / BLOCK_INERTIA)
            gcx = bx + c * COG_LOCAL[0] - s * COG_LOCAL[1] - nwx * j / BLOCK_MASS
            gcy = by + s * COG_LOCAL[0] + c * COG_LOCAL[1] - nwy * j / BLOCK_MASS
            nth = th - rxn * j / BLOCK_INERTIA
            c2, s2 = np.cos(nth), np.sin(nth)
            nbx = gcx - (c2 * COG_LOCAL[0] - s2 * COG_LOCAL[1])
            nby = gcy - (s2 * COG_LOCAL[0] + c2 * COG_LOCAL[1])
            kx = nbx[:, None] + c2[:, None] * kpx - s2[:, None] * kpy
            ky = nby[:, None] + s2[:, None] * kpx + c2[:, None] * kpy
            # The walls stop the block: end the rollout where a corner would cross one; the
            # pusher itself must stay where the action space lets it go.
            alive &= (
                (kx.min(1) > WALL_INNER_LOW)
                & (kx.max(1) < WALL_INNER_HIGH)
                & (ky.min(1) > WALL_INNER_LOW)
                & (ky.max(1) < WALL_INNER_HIGH)
                & (px >= ACTION_LOW)
                & (px <= ACTION_HIGH)
                & (py >= ACTION_LOW)
                & (py <= ACTION_HIGH)
            )
            cost = np.mean(np.sqrt((kx - gx) ** 2 + (ky - gy) ** 2), axis=1)
            better = alive & (cost < best_cost)
            best_cost = np.where(better, cost, best_cost)
            best_depth = np.where(better, depth, best_depth)
            bx, by, th = np.where(alive, nbx, bx), np.where(alive, nby, by), np.where(alive, nth, th)
            if not alive.any():
                break
        return best_cost, best_depth

    # ------------------------------------------------------------------ routing (block frame)
    def _segment_free(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether straight segments a->b (..., 2) keep clear of the T.

        A segment may not come closer to the T than R + 2 px, or than its own endpoints do
        (so sliding along a face at contact distance is allowed, cutting through is not).
        """
        ts = np.linspace(0.0, 1.0, SEGMENT_SAMPLES)
        pts = a[..., None, :] + (b - a)[..., None, :] * ts[:, None]
        sdf = _t_sdf(pts)
        need = np.minimum(np.minimum(sdf[..., 0], sdf[..., -1]) - 0.5, PUSHER_RADIUS + 2.0)
        return np.min(sdf, axis=-1) >= need

    def _exit_point(self, p: np.ndarray) -> np.ndarray:
        """Where the agent leaves the inflated hull, moving along the normal of the nearest face."""
        rel = p - self.face_origins
        u = np.clip(np.sum(rel * self.face_tangents, axis=1), 0.0, self.face_lengths)
        d = np.linalg.norm(rel - self.face_tangents * u[:, None], axis=1)
        f = int(np.argmin(d))
        n = self.face_normals[f]
        return p + n * (self._ray_exit(p, n) + 1.0)

    def _hull_vertices_between(self, s_from: float, s_to: float, side: int) -> np.ndarray:
        """Hull vertices passed when walking the boundary from arc s_from to s_to."""
        if side > 0:
            span = (s_to - s_from) % self.hull_perim
            off = (self.hull_cum - s_from) % self.hull_perim
            idx = np.nonzero((off > 1e-6) & (off < span))[0]
            order = np.argsort(off[idx])
        else:
            span = (s_from - s_to) % self.hull_perim
            off = (s_from - self.hull_cum) % self.hull_perim
            idx = np.nonzero((off > 1e-6) & (off < span))[0]
            order = np.argsort(off[idx])
        return self.hull_v[idx[order]]

    def _travel_costs(self, p: np.ndarray, to_world) -> tuple[np.ndarray, np.ndarray, dict]:
        """Travel length to each candidate's approach point, and route lengths per side."""
        direct = self._segment_free(np.broadcast_to(p, self.a_local.shape), self.a_local)
        direct_len = np.linalg.norm(self.a_local - p, axis=1)
        s_p, d_p, inside = self._arc_param(p)
        entry = p
        base = 0.0
        if inside and d_p > self.cfg.hull_margin * 0.5:
            entry = self._exit_point(p)
            base = float(np.linalg.norm(entry - p))
            s_p, d_e, _ = self._arc_param(entry)
            base += d_e
        else:
            base = d_p
        ccw = (self.s_arc - s_p) % self.hull_perim
        cw = (s_p - self.s_arc) % self.hull_perim
        # Sides whose route leaves the reachable area are blocked (the T is against a wall).
        hv_world = to_world(self.hull_v)
        oob = np.any((hv_world < ACTION_LOW - 6.0) | (hv_world > ACTION_HIGH + 6.0), axis=1)
        ccw_ok = np.ones(len(self.c_local), dtype=bool)
        cw_ok = np.ones(len(self.c_local), dtype=bool)
        if oob.any():
            off_ccw = (self.hull_cum[oob] - s_p) % self.hull_perim
            off_cw = (s_p - self.hull_cum[oob]) % self.hull_perim
            ccw_ok = ~np.any(off_ccw[None, :] < ccw[:, None], axis=1)
            cw_ok = ~np.any(off_cw[None, :] < cw[:, None], axis=1)
        ccw_len = np.where(ccw_ok, base + ccw + self.sa_len, np.inf)
        cw_len = np.where(cw_ok, base + cw + self.sa_len, np.inf)
        travel = np.where(direct, direct_len, np.minimum(ccw_len, cw_len))
        info = {"entry": entry, "s_entry": s_p, "direct": direct, "ccw": ccw_len, "cw": cw_len}
        return travel, direct, info

    # ------------------------------------------------------------------ main loop
    def act(self, obs, env) -> np.ndarray:
        """Next absolute pusher target (float64, shape (2,), in [0, 512]^2). Reads the simulator through
        ``env.unwrapped`` (``obs`` is not needed: the expert is privileged)."""
        env = env.unwrapped
        cfg = self.cfg
        self.step_count += 1
        agent = np.array(env.agent.position, dtype=float)
        pos = np.array(env.block.position, dtype=float)
        theta = float(env.block.angle)
        goal = np.asarray(getattr(env, "goal_pose", DEFAULT_GOAL_POSE), dtype=float)
        self.goal_kp = T_KEYPOINTS @ _rot(goal[2]).T + goal[:2]
        rot = _rot(theta)

        def to_world(x: np.ndarray) -> np.ndarray:
            return x @ rot.T + pos

        p = (agent - pos) @ rot  # agent in the block frame

        cost_now = float(self._keypoint_cost(pos, np.array(theta)))
        if cost_now < self.best_cost - cfg.stall_progress:
            self.best_cost = cost_now
            self.last_progress_step = self.step_count
        if self.contact is not None and self.step_count - self.last_progress_step > cfg.stall_steps:
            self.banned_until[self.contact] = self.step_count + cfg.ban_steps
            self.stats["stalls"] += 1
            self.contact = None
            self.side = 0
            self.last_progress_step = self.step_count
            self.best_cost = cost_now

        best_cost, best_depth = self._rollout_pushes(pos, theta)
        gain = np.where(np.isfinite(best_cost), cost_now - best_cost, 0.0)
        travel, direct, route = self._travel_costs(p, to_world)
        a_world = to_world(self.a_local)
        reachable = np.isfinite(travel) & np.all(
            (a_world >= ACTION_LOW + 1.0) & (a_world <= ACTION_HIGH - 1.0), axis=1
        )
        score = gain / (travel + best_depth + cfg.score_overhead)
        valid = reachable & (gain > cfg.min_gain) & (self.banned_until <= self.step_count)
        if not valid.any():  # local minimum (e.g. against a wall): take any improving push
            valid = reachable & (gain > 0.0)
        score = np.where(valid, score, -np.inf)

        # Commit to a contact; switch only when it is exhausted or another is clearly better.
        if self.contact is not None and not valid[self.contact]:
            self.contact = None
        if self.contact is not None:
            others = score.copy()
            others[self.contact] = -np.inf
            ratio = cfg.switch_ratio if self.pushing else cfg.switch_ratio_travelling
            if others.max() > ratio * score[self.contact]:
                self.contact = None
                self.stats["preempted"] += 1
                self.stats["preempted_travelling"] += int(not self.pushing)
        if self.contact is None and valid.any():
            top = score.max()
            pool = np.nonzero(score >= cfg.near_equal_ratio * top)[0]
            self.contact = int(self.rng.choice(pool))
            self.side = 0
            self.stats["contacts"] += 1
            self.last_progress_step = self.step_count  # a new commitment gets a fresh allowance

        if self.contact is None:  # nothing improves the pose: hold still
            self.pushing = False
            target = agent.copy()
        else:
            path = self._plan_path(p, self.contact, best_depth[self.contact], direct, route)
            carrot = self._carrot(path, cfg.lookahead)
            target = to_world(carrot)
        if self.prev_target is None:
            self.prev_target = agent.copy()
        step = target - self.prev_target
        norm = float(np.linalg.norm(step))
        if norm > cfg.max_target_step:
            step *= cfg.max_target_step / norm
        target = np.clip(self.prev_target + step, ACTION_LOW, ACTION_HIGH)
        self.prev_target = target
        return target.astype(np.float64)

    def _plan_path(self, p: np.ndarray, i: int, depth: float, direct: np.ndarray, route: dict) -> np.ndarray:
        """Polyline (block frame) from the agent to the end of the push at candidate i."""
        cfg = self.cfg
        c, n = self.c_local[i], self.n_local[i]
        push_end = c + n * (PUSHER_RADIUS - depth)
        rel = p - c
        along = float(rel @ n)
        across = float(np.linalg.norm(rel - n * along))
        on_ray = across < cfg.on_ray_tolerance and 0.0 < along < PUSHER_RADIUS + cfg.approach_gap + cfg.on_ray_tolerance
        self.pushing = on_ray
        if on_ray:
            return np.stack([p, push_end])
        if direct[i]:
            return np.stack([p, self.a_local[i], push_end])
        ccw_len, cw_len = route["ccw"][i], route["cw"][i]
        ok = {1: np.isfinite(ccw_len), -1: np.isfinite(cw_len)}
        if self.side == 0 or not ok[self.side]:
            if ok[1] and ok[-1] and max(ccw_len, cw_len) <= cfg.route_tie_ratio * min(ccw_len, cw_len):
                take_pref = self.rng.random() < cfg.preferred_side_prob
                self.side = self.preferred_side if take_pref else -self.preferred_side
            else:
                self.side = 1 if ccw_len <= cw_len else -1
        entry = route["entry"]
        hull_pts = self._hull_vertices_between(route["s_entry"], self.s_arc[i], self.side)
        pts = [p]
        if np.linalg.norm(entry - p) > 1e-6:
            pts.append(entry)
        pts.extend(hull_pts)
        pts.extend([self.s_local[i], self.a_local[i], push_end])
        path = np.array(pts)
        # String-pull from the agent: jump to the farthest route waypoint in clear view (up to the
        # staging point; the approach and push points are only entered along the normal).
        via = path[1:-2]
        free = self._segment_free(np.broadcast_to(p, via.shape), via)
        j = int(np.nonzero(free)[0].max()) + 1 if free.any() else 1
        return np.concatenate([p[None], path[j:]])

    @staticmethod
    def _carrot(path: np.ndarray, lookahead: float) -> np.ndarray:
        """Point at arc length ``lookahead`` along the polyline (or its end)."""
        remaining = lookahead
        for a, b in zip(path[:-1], path[1:]):
            seg = float(np.linalg.norm(b - a))
            if seg >= remaining:
                return a + (b - a) * (remaining / max(seg, 1e-9))
            remaining -= seg
        return path[-1]
