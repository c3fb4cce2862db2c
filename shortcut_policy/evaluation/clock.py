"""A robot's control clock in simulated time: the world moves on while the network thinks.

Synchronous evaluation stops the world at every replan. On a robot the controller applies one action
per tick of its control rate (the env's ``control_hz``) from a queue, and a new chunk reaches the queue
only when its inference has finished. Here an inference that starts at tick s and takes ``delay`` ticks
(``delay_steps``, or its latency in ms turned into ticks, rounded up) lands at tick s + delay:

- it was computed from the observations up to tick s, so its first ``delay`` actions are for ticks
  already gone and are dropped; from tick s + delay it replaces what was left of the queue, with as many
  actions as a synchronous replan executes (``n_action_steps``, fewer where the chunk's horizon ends);
- until it lands the robot goes on with the previous chunk's queue; when that runs dry it holds its last
  action (a position target: it stays where it was told; for a delta action, it repeats the last
  motion), and each such tick is counted (``dry_ticks``);
- the next inference starts when ``lookahead`` actions or fewer are left in the queue and none is in
  flight (0: when the queue is empty; ``lookahead = delay`` lands each chunk as the last one runs out);
- an episode's clock starts once its first chunk is there, as a robot at rest waits for its first plan.

With no delay and no lookahead every episode is the synchronous one, action for action. Episodes are
reproducible under a fixed delay: the noise comes from the policy's generator in a fixed order.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass(frozen=True)
class ControlClock:
    """How long each replan takes, in control ticks, and when the next one starts."""

    delay_steps: int = 0  # every inference lands this many control ticks after it started
    lookahead: int = 0  # start the next inference when this many actions or fewer are left (none in flight)

    def __post_init__(self) -> None:
        for name in ("delay_steps", "lookahead"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 1000:
                raise ValueError(f"clock.{name}: expected a whole number of control ticks in [0, 1000], got {value!r}")

    @classmethod
    def from_latency(cls, latency_ms: float, control_hz: float, lookahead: int | None = None) -> "ControlClock":
        """The clock of an inference that takes ``latency_ms`` on a robot running at ``control_hz``: the delay
        is ceil(latency / period) ticks; ``lookahead`` defaults to that delay (chunks land as the queue empties)."""
        if not (isinstance(latency_ms, (int, float)) and math.isfinite(latency_ms) and latency_ms >= 0):
            raise ValueError(f"latency_ms: expected a finite latency >= 0 in ms, got {latency_ms!r}")
        if not (isinstance(control_hz, (int, float)) and math.isfinite(control_hz) and control_hz > 0):
            raise ValueError(f"control_hz: expected a control rate > 0 in Hz, got {control_hz!r}")
        delay = math.ceil(latency_ms * control_hz / 1e3 - 1e-9)  # a latency of exactly one period is one tick
        return cls(delay_steps=delay, lookahead=delay if lookahead is None else lookahead)


@dataclass
class _Loop:
    """One control loop (an env slot): its observation history, its queue, the inference in flight."""

    history: collections.deque
    queue: collections.deque = field(default_factory=collections.deque)
    landing: tuple[int, list[np.ndarray]] | None = None  # (tick it lands at, its actions)
    last: np.ndarray | None = None
    tick: int = 0
    dry_ticks: int = 0
    new_chunk: bool = False  # this tick's action is the first of a chunk that just landed


class ClockedControl:
    """``policy``'s control loops run on ``clock``: ``act`` gives each row's action for this tick."""

    def __init__(self, policy: Any, clock: ControlClock) -> None:
        if getattr(policy, "temporal_ensemble", None) is not None:
            raise ValueError("clock: a clocked loop executes each chunk as it lands; set policy.temporal_ensemble to None")
        ahead = policy.horizon - policy.n_obs_steps  # actions a chunk holds after the tick of its last observation
        if clock.delay_steps > ahead:
            raise ValueError(f"clock.delay_steps: a chunk of horizon {policy.horizon} holds actions up to {ahead} ticks "
                             f"after its observation; a delay of {clock.delay_steps} ticks leaves it none to execute")
        self.policy, self.clock = policy, clock
        self.loops: dict[int, _Loop] = {}

    def reset(self, rows: Sequence[int]) -> None:
        for r in rows:
            self.loops.pop(r, None)

    def act(self, obs: Mapping[str, np.ndarray], rows: Sequence[int], steps: int) -> np.ndarray:
        """obs: each key (b, *shape), row i of the batch is loop ``rows[i]``; returns (b, A) actions."""
        p, clock = self.policy, self.clock
        starting = []
        for i, r in enumerate(rows):
            loop = self.loops.setdefault(r, _Loop(collections.deque(maxlen=p.n_obs_steps)))
            frame = {k: obs[k][i] for k in p.obs_keys}
            loop.history.extend([frame] * (p.n_obs_steps if not loop.history else 1))  # pad the start with the first frame
            loop.new_chunk = False
            if loop.landing is not None and loop.landing[0] <= loop.tick:
                loop.queue, loop.landing, loop.new_chunk = collections.deque(loop.landing[1]), None, True
            if loop.landing is None and len(loop.queue) <= clock.lookahead:
                starting.append(r)
        if starting:
            batch = {k: np.stack([np.stack([f[k] for f in self.loops[r].history]) for r in starting]) for k in p.obs_keys}
            chunks = p.predict_chunk(batch, steps=steps, full=True, validate=False)  # (b, H, A)
            first = p.n_obs_steps - 1  # the chunk's action for the tick of its last observation
            for r, chunk in zip(starting, chunks):
                loop = self.loops[r]
                # the first chunk of an episode is waited for; a later one lands after the delay
                delay = clock.delay_steps if loop.last is not None else 0
                actions = list(chunk[first + delay : first + delay + p.n_action_steps])
                if delay == 0:
                    loop.queue, loop.new_chunk = collections.deque(actions), True
                else:
                    loop.landing = (loop.tick + delay, actions)
        out = []
        for r in rows:
            loop = self.loops[r]
            if loop.queue:
                loop.last = loop.queue.popleft()
            else:  # dry: hold the last action until the next chunk lands
                loop.dry_ticks += 1
            out.append(loop.last)
            loop.tick += 1
        return np.stack(out)
