"""The step budget that fits a deadline: ``policy.act(obs, deadline_ms=X)``.

A step-conditioned network acts with any number of steps; which number fits a control period depends
on the machine it runs on, what else runs there, and the batch. ``BudgetPicker`` keeps the recent
replanning times of every (step budget, batch) it has seen, measures a budget it has not seen before
it first relies on it (one warm-up call, which also captures a CUDA graph, then a few timed calls),
and picks the largest budget whose recent 95th percentile fits the deadline. Budgets are tried from
the smallest up and the first that does not fit ends the search, so a larger budget that happened to
time well is never picked over a smaller one that does not fit. When not even the smallest fits, it is
used anyway: acting late is better than not acting.

Every replanning call of the policy is timed and recorded, so the choice follows the machine as it
changes (another process starts, the CPU throttles); ``forget`` starts the measurements over.
"""

from __future__ import annotations

import collections
import math
import numbers
import time
from typing import Callable, Sequence

import numpy as np

CALIBRATION_CALLS = 5  # timed calls of a budget before it is relied on (after one untimed warm-up call)
WINDOW = 20  # the recent calls per (budget, batch) whose 95th percentile is compared to the deadline


def check_deadline(deadline_ms: object) -> float:
    """A deadline in milliseconds (a positive finite number), or one clear error naming ``deadline_ms``."""
    if isinstance(deadline_ms, bool) or not isinstance(deadline_ms, numbers.Real) or not 0 < deadline_ms < math.inf:
        raise ValueError(f"deadline_ms: expected a positive number of milliseconds for one replanning call, got {deadline_ms!r}")
    return float(deadline_ms)


class BudgetPicker:
    """Picks step budgets from ``budgets`` by their measured replanning time; ``clock`` returns seconds
    (``time.perf_counter``; tests inject their own)."""

    def __init__(self, budgets: Sequence[int], clock: Callable[[], float] = time.perf_counter) -> None:
        if not budgets:
            raise ValueError("budgets: expected at least one step budget to pick from, got none")
        self.budgets = sorted({int(b) for b in budgets})
        self.clock = clock
        self.timings: dict[tuple[int, int], collections.deque] = {}  # (steps, batch) -> recent milliseconds
        self.chosen: collections.Counter = collections.Counter()  # steps -> how often a deadline picked it

    def record(self, steps: int, batch: int, milliseconds: float) -> None:
        self.timings.setdefault((steps, batch), collections.deque(maxlen=WINDOW)).append(float(milliseconds))

    def p95(self, steps: int, batch: int) -> float | None:
        """The 95th percentile of the recent replanning times (ms) at ``steps`` and ``batch``; None if unmeasured."""
        times = self.timings.get((steps, batch))
        return float(np.percentile(times, 95)) if times else None

    def time(self, call: Callable[[], object]) -> float:
        """Milliseconds that ``call()`` took on this picker's clock."""
        start = self.clock()
        call()
        return (self.clock() - start) * 1e3

    def choose(self, deadline_ms: float, batch: int, replan: Callable[[int], object]) -> int:
        """The largest budget whose recent p95 at ``batch`` fits ``deadline_ms``, trying budgets from the
        smallest up; ``replan(steps)`` runs one replanning call, used to measure a budget not yet timed."""
        deadline_ms = check_deadline(deadline_ms)
        chosen = self.budgets[0]  # the fallback when nothing fits
        for steps in self.budgets:
            timed = self.timings.get((steps, batch), ())
            if len(timed) < CALIBRATION_CALLS:
                if not timed:
                    replan(steps)  # warm-up: first-call allocations, a CUDA graph's capture
                for _ in range(CALIBRATION_CALLS - len(timed)):
                    self.record(steps, batch, self.time(lambda: replan(steps)))
            if self.p95(steps, batch) > deadline_ms:
                break
            chosen = steps
        self.chosen[chosen] += 1
        return chosen

    def forget(self) -> None:
        """Drop every measurement (and the count of choices): the next deadline call measures again."""
        self.timings.clear()
        self.chosen.clear()
