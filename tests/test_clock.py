"""The control clock: inferences that land after a delay while the robot goes on with its queue."""

import dataclasses

import numpy as np
import pytest

from shortcut_policy.evaluation.clock import ClockedControl, ControlClock
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.evaluation.sweep import evaluate_on_clock, evaluate_policy


class TickPolicy:
    """A stand-in whose chunk says when it was observed: action h of a chunk planned from the observation of
    tick s is 100 s + h, so every executed action names its plan and its place in it."""

    n_obs_steps, n_action_steps, horizon, obs_keys = 2, 4, 8, ("tick",)

    def predict_chunk(self, batch, steps, full, validate):
        seen = batch["tick"][:, -1, 0]  # (b,) the tick of each row's last observation
        return np.stack([100 * s + np.arange(self.horizon, dtype=float) for s in seen])[..., None]  # (b, H, 1)


def run_ticks(clock, ticks):
    control = ClockedControl(TickPolicy(), clock)
    executed = [float(control.act({"tick": np.array([[t]])}, [0], steps=1)[0, 0]) for t in range(ticks)]
    return executed, control.loops[0]


def test_without_delay_the_clock_is_the_synchronous_loop():
    executed, loop = run_ticks(ControlClock(), 12)
    # chunks planned at ticks 0, 4, 8, each executed from its action 1 (the tick of its last observation)
    assert executed == [1, 2, 3, 4, 401, 402, 403, 404, 801, 802, 803, 804]
    assert loop.dry_ticks == 0


def test_a_delayed_chunk_drops_its_past_actions_and_the_robot_holds_while_the_queue_is_dry():
    executed, loop = run_ticks(ControlClock(delay_steps=2), 12)
    # the first chunk is waited for; the one planned at tick 4 lands at tick 6, its actions for ticks 4, 5 dropped
    assert executed == [1, 2, 3, 4, 4, 4, 403, 404, 405, 406, 406, 406]
    assert loop.dry_ticks == 4


def test_with_lookahead_the_next_chunk_lands_as_the_queue_runs_out():
    executed, loop = run_ticks(ControlClock(delay_steps=2, lookahead=2), 12)
    # planned at tick 2 with 2 actions left, it lands at tick 4; then planned at 6, landing at 8; and so on
    assert executed == [1, 2, 3, 4, 203, 204, 205, 206, 603, 604, 605, 606]
    assert loop.dry_ticks == 0


def test_a_latency_becomes_whole_control_ticks_and_bad_clocks_are_refused():
    assert ControlClock.from_latency(0.0, 10.0) == ControlClock(0, 0)
    assert ControlClock.from_latency(9.0, 10.0) == ControlClock(1, 1)  # 9 ms at 10 Hz: the next tick
    assert ControlClock.from_latency(100.0, 10.0) == ControlClock(1, 1)  # exactly one period
    assert ControlClock.from_latency(100.5, 10.0, lookahead=0) == ControlClock(2, 0)
    with pytest.raises(ValueError, match=r"clock.delay_steps: expected a whole number of control ticks in \[0, 1000\], got -1"):
        ControlClock(delay_steps=-1)
    with pytest.raises(ValueError, match=r"clock.lookahead: expected a whole number .* got 1.5"):
        ControlClock(lookahead=1.5)
    with pytest.raises(ValueError, match=r"latency_ms: expected a finite latency >= 0 in ms, got nan"):
        ControlClock.from_latency(float("nan"), 10.0)
    with pytest.raises(ValueError, match=r"control_hz: expected a control rate > 0 in Hz, got 0"):
        ControlClock.from_latency(5.0, 0)
    with pytest.raises(ValueError, match=r"clock.delay_steps: a chunk of horizon 8 holds actions up to 6 ticks after its "
                                         r"observation; a delay of 7 ticks leaves it none to execute"):
        ClockedControl(TickPolicy(), ControlClock(delay_steps=7))


def test_rollouts_on_a_clock_without_delay_are_the_synchronous_rollouts(chunk_of_4_policy):
    policy, env = chunk_of_4_policy
    plain = rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0)
    clocked = rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0, clock=ControlClock())
    for a, b in zip(plain, clocked):
        np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))
        assert a.chunk_starts == b.chunk_starts and b.dry_ticks == 0


def test_a_fixed_delay_reproduces_the_same_episodes(chunk_of_4_policy):
    policy, env = chunk_of_4_policy
    clock = ControlClock(delay_steps=2)
    first = rollout(policy, env, [0, 1], steps=1, progress=False, workers=0, clock=clock)
    again = rollout(policy, env, [0, 1], steps=1, progress=False, workers=0, clock=clock)
    plain = rollout(policy, env, [0, 1], steps=1, progress=False, workers=0)
    for a, b, c in zip(first, again, plain):
        np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))
        assert not np.array_equal(np.stack(a.actions), np.stack(c.actions))  # the delay changed what was executed
        assert a.dry_ticks > 0 and a.chunk_starts[:2] == [0, 6]  # the second chunk: planned at tick 4, landed at 6


def test_clocked_rows_pair_with_the_synchronous_ones_and_bad_clocks_stop_before_rolling_out(chunk_of_4_policy, monkeypatch):
    policy, env = chunk_of_4_policy
    rows = evaluate_on_clock(policy, env, [1], [0, 2], episodes=2, progress=False, workers=0)
    assert [(r["delay_steps"], r["lookahead"]) for r in rows] == [(0, 0), (2, 2)]  # lookahead: the delay unless given
    synchronous = evaluate_policy(policy, env, [1], episodes=2, latency_calls=0, progress=False, workers=0)[0]
    for key in ("score", "success_rate", "jerk", "boundary_jerk", "interior_jerk"):  # the delay-0 row is the synchronous one
        assert rows[0][key] == pytest.approx(synchronous[key], abs=1e-12), key
    assert rows[0]["dry_ticks"] == 0 and rows[1]["jerk"] != rows[0]["jerk"]
    monkeypatch.setattr("shortcut_policy.evaluation.sweep.rollout", lambda *a, **k: pytest.fail("rolled out"))
    with pytest.raises(ValueError, match=r"clock_delays: 9: a chunk of horizon 8 holds actions up to 6 ticks"):
        evaluate_on_clock(policy, env, [1], [0, 9], episodes=2, progress=False)
    with pytest.raises(ValueError, match=r"clock_lookahead: expected control ticks \(a whole number in \[0, 1000\]\) or null"):
        evaluate_on_clock(policy, env, [1], [1], episodes=2, lookahead=-1, progress=False)
    with pytest.raises(ValueError, match=r"clock_delays: expected control ticks \(whole numbers in \[0, 1000\]\) or 'measured', got 'slow'"):
        evaluate_on_clock(policy, env, [1], ["slow"], episodes=2, progress=False)
    with pytest.raises(ValueError, match=r"clock_delays: expected control ticks .* got -1"):
        evaluate_on_clock(policy, env, [1], [-1], episodes=2, progress=False)
    policy.temporal_ensemble = 0.01
    try:
        with pytest.raises(ValueError, match=r"temporal_ensemble, clock_delays: a clocked rollout executes chunks as they land"):
            evaluate_on_clock(policy, env, [1], [1], episodes=2, progress=False)
    finally:
        policy.temporal_ensemble = None
    unrated = dataclasses.replace(env, control_hz=None)
    with pytest.raises(ValueError, match=r"clock_delays: 'measured' needs the env's control rate, and push_t declares none"):
        evaluate_on_clock(policy, unrated, [1], ["measured"], episodes=2, progress=False)
