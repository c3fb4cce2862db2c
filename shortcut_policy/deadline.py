"""The step budget that fits a deadline: ``policy.act(obs, deadline_ms=X)``.

A step-conditioned network acts with any number of steps; which number fits a control period depends
on the machine it runs on, what else runs there, and the batch. ``BudgetPicker`` keeps the recent
replanning times of every (step budget, batch) it has seen, measures a budget it has not seen before
it first relies on it (a few timed calls), and picks the largest budget whose recent 95th percentile
fits the deadline. The first call of every (budget, batch) is never counted: it pays for first-call
allocations and, on a GPU, the capture of that budget's CUDA graph. Budgets are tried from the
smallest up and the first that does not fit ends the search, so a larger budget that happened to
time well is never picked over a smaller one that does not fit. When not even the smallest fits, it
is used anyway: acting late is better than not acting.

Every replanning call of the policy is timed and recorded, so when the machine slows down (another
process starts, the CPU throttles) the budget in use stops fitting and a smaller one is picked. A
budget that stopped fitting is not timed again by itself, since that would cost a late tick: ``forget``
starts the measurements over, and ``probe_every=N`` lets every N-th deadline replan run the next budget
up once (that one call may be late) so that the picker climbs back when the machine is free again.
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

    def __init__(
        self, budgets: Sequence[int], clock: Callable[[], float] = time.perf_counter, probe_every: int | None = None
    ) -> None:
        if not budgets:
            raise ValueError("budgets: expected at least one step budget to pick from, got none")
        self.budgets = sorted({int(b) for b in budgets})
        self.clock = clock
        self.probe_every = probe_every
        self.timings: dict[tuple[int, int], collections.deque] = {}  # (steps, batch) -> recent milliseconds
        self.warm: set[tuple[int, int]] = set()  # the (steps, batch) pairs whose first call has been made
        self.measured: set[tuple[int, int]] = set()  # the pairs measured before they were first relied on
        self.chosen: collections.Counter = collections.Counter()  # steps -> how often a deadline picked it
        self._replans = 0

    @property
    def probe_every(self) -> int | None:
        """Every this many deadline replans, run the next budget up once to see whether it fits again (None: never)."""
        return self._probe_every

    @probe_every.setter
    def probe_every(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"probe_every: expected a number of replans >= 1 or None (never probe), got {value!r}")
        self._probe_every = value

    def record(self, steps: int, batch: int, milliseconds: float) -> None:
        """One replanning call's time; the first of each (steps, batch) is a warm-up and is not kept."""
        if (steps, batch) not in self.warm:
            self.warm.add((steps, batch))
            return
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
        chosen, above = self.budgets[0], None  # the fallback when nothing fits; the first budget that does not fit
        for steps in self.budgets:
            if (steps, batch) not in self.measured:
                while len(self.timings.get((steps, batch), ())) < CALIBRATION_CALLS:  # the first call warms up only
                    self.record(steps, batch, self.time(lambda: replan(steps)))
                self.measured.add((steps, batch))
            p95 = self.p95(steps, batch)
            if p95 is None or p95 > deadline_ms:
                above = steps
                break
            chosen = steps
        self._replans += 1
        if self.probe_every and above is not None and above != chosen and self._replans % self.probe_every == 0:
            self.timings[above, batch] = collections.deque(maxlen=WINDOW)  # this call's time replaces the old ones
            chosen = above
        self.chosen[chosen] += 1
        return chosen

    def forget(self) -> None:
        """Drop every measurement (and the count of choices): the next deadline call measures again."""
        self.timings.clear()
        self.measured.clear()
        self.chosen.clear()
        self._replans = 0
