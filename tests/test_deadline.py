"""act(obs, deadline_ms=X): the largest step budget whose measured replanning time fits, on an injected clock."""

import numpy as np
import pytest
import torch
from test_policy import make_policy, obs

from shortcut_policy.deadline import CALIBRATION_CALLS, WINDOW, BudgetPicker


class NetworkClock:
    """A clock that advances ``ms_per_call`` milliseconds at every network evaluation, so a k-step replan
    takes k times as long, and nothing else takes time: what a deadline picks is then known exactly."""

    def __init__(self, policy, ms_per_call: float = 1.0) -> None:
        self.now, self.ms_per_call = 0.0, ms_per_call
        policy.network.denoiser.register_forward_hook(self.tick)
        policy.budget.clock = self

    def tick(self, *args) -> None:
        self.now += self.ms_per_call / 1e3

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("deadline, expected, measured", [
    (10.0, 8, [1, 2, 4, 8, 16]), (16.5, 16, [1, 2, 4, 8, 16, 32]), (1000, 128, [1, 2, 4, 8, 16, 32, 64, 128]),
    (0.5, 1, [1]), (3.99, 2, [1, 2, 4]),
])
def test_the_largest_budget_that_fits_the_deadline_is_chosen_and_reported(deadline, expected, measured):
    policy = make_policy()
    NetworkClock(policy)
    policy.act(obs(), deadline_ms=deadline)
    assert policy.last_steps == expected
    assert policy.budget.chosen == {expected: 1}
    # each budget tried was measured (a warm-up, then a few timed calls), up to the first that does not fit
    assert sorted(steps for steps, _ in policy.budget.timings) == measured
    assert all(len(policy.budget.timings[s, 1]) == CALIBRATION_CALLS + (s == expected) for s in measured)
    assert policy.budget.warm == {(s, 1) for s in measured}
    assert policy.budget.p95(expected, 1) == pytest.approx(expected)


def test_measuring_draws_its_own_noise_so_the_actions_are_those_of_the_chosen_budget():
    chosen = make_policy()
    NetworkClock(chosen)
    chosen.reset(seed=5)
    fixed = make_policy()
    fixed.reset(seed=5)
    for i in range(3 * chosen.n_action_steps):
        np.testing.assert_array_equal(chosen.act(obs(i), deadline_ms=10.0), fixed.act(obs(i), steps=8))


def test_the_choice_follows_real_calls_and_drops_to_a_smaller_budget_when_the_machine_slows():
    policy = make_policy()
    clock = NetworkClock(policy)
    policy.act(obs(), deadline_ms=10.0)
    assert policy.last_steps == 8
    clock.ms_per_call = 2.0  # another process takes half the machine: 8 steps now take 16 ms
    seen = []
    for i in range(WINDOW * policy.n_action_steps):
        policy.act(obs(i), deadline_ms=10.0)
        seen.append(policy.last_steps)
    assert seen[0] == 8 and seen[-1] == 4  # the recent p95 at 8 passed the deadline; 4 was measured fitting
    assert policy.budget.p95(8, 1) > 10.0


def test_with_probing_the_choice_climbs_back_when_the_machine_is_free_again():
    policy = make_policy()
    clock = NetworkClock(policy)
    policy.budget.probe_every = 10
    policy.act(obs(), deadline_ms=10.0)
    clock.ms_per_call = 2.0
    for i in range(WINDOW * policy.n_action_steps):
        policy.act(obs(i), deadline_ms=10.0)
    assert policy.last_steps == 4
    clock.ms_per_call = 1.0  # free again: the next probe of 8 fits, and 8 is kept
    seen = []
    for i in range(30 * policy.n_action_steps):
        policy.act(obs(i), deadline_ms=10.0)
        seen.append(policy.last_steps)
    assert seen[-1] == 8 and policy.budget.p95(8, 1) == pytest.approx(8.0)
    # without probing it stays where the slow period left it (forget() measures again)
    unprobed = make_policy()
    clock = NetworkClock(unprobed)
    unprobed.act(obs(), deadline_ms=10.0)
    clock.ms_per_call = 2.0
    for i in range(WINDOW * unprobed.n_action_steps):
        unprobed.act(obs(i), deadline_ms=10.0)
    clock.ms_per_call = 1.0
    for i in range(30 * unprobed.n_action_steps):
        unprobed.act(obs(i), deadline_ms=10.0)
    assert unprobed.last_steps == 4
    unprobed.budget.forget()
    unprobed.reset()
    unprobed.act(obs(), deadline_ms=10.0)
    assert unprobed.last_steps == 8


def test_the_first_call_of_a_budget_is_a_warm_up_and_is_not_counted():
    """A slow first call (allocations, a CUDA graph's capture) at fixed steps must not lock that budget out."""
    policy = make_policy()
    clock = NetworkClock(policy)
    slow_first = policy.network.denoiser.register_forward_hook(lambda *a: setattr(clock, "now", clock.now + 0.5))
    policy.act(obs(), steps=8)  # 8 network calls, each 500 ms late
    slow_first.remove()
    assert policy.budget.p95(8, 1) is None and (8, 1) in policy.budget.warm
    policy.reset()
    policy.act(obs(), deadline_ms=10.0)
    assert policy.last_steps == 8


def test_a_budget_that_does_not_fit_ends_the_search_and_nothing_is_picked_above_it():
    picker = BudgetPicker([1, 2, 4, 8], clock=lambda: 0.0)
    for steps, ms in [(1, 1.0), (2, 2.0), (4, 50.0), (8, 3.0)]:  # 8 timed fast once (noise), 4 does not fit
        for _ in range(CALIBRATION_CALLS + 1):  # the first is the warm-up
            picker.record(steps, 1, ms)
    assert picker.choose(10.0, 1, replan=lambda steps: pytest.fail("every budget is measured")) == 2
    assert picker.choose(0.1, 1, replan=lambda steps: None) == 1  # nothing fits: the smallest budget, not a refusal


def test_timings_are_kept_per_batch_size():
    policy = make_policy()
    NetworkClock(policy)
    batch = {"keypoint": np.full((3, 18), 100.0)}
    policy.act(batch, deadline_ms=10.0)
    assert {b for _, b in policy.budget.timings} == {3}
    policy.reset()
    policy.act(obs(), deadline_ms=10.0)
    assert {b for _, b in policy.budget.timings} == {1, 3}
    policy.budget.forget()
    assert not policy.budget.timings and not policy.budget.chosen and not policy.budget.measured


def test_fixed_steps_are_recorded_too_and_default_to_one():
    policy = make_policy()
    NetworkClock(policy)
    for _ in range(2 * policy.n_action_steps):  # two replans: the warm-up, then one timed
        policy.act(obs())
    assert policy.last_steps == 1 and policy.budget.p95(1, 1) == pytest.approx(1.0)
    policy.reset()
    policy.act(obs(), steps=4)
    policy.reset()
    policy.act(obs(), steps=4)
    assert policy.last_steps == 4 and policy.budget.p95(4, 1) == pytest.approx(4.0)


def test_a_bad_probe_setting_is_named():
    with pytest.raises(ValueError, match=r"probe_every: expected a number of replans >= 1 or None \(never probe\), got 0"):
        BudgetPicker([1, 2], probe_every=0)


@pytest.mark.parametrize("bad", [0, -5.0, float("nan"), float("inf"), "10", True, None])
def test_bad_deadlines_and_both_options_get_a_clear_error(bad):
    policy = make_policy()
    if bad is None:
        with pytest.raises(ValueError, match=r"steps, deadline_ms: give one of them .* got steps=2 and deadline_ms=5"):
            policy.act(obs(), steps=2, deadline_ms=5)
        return
    with pytest.raises(ValueError, match=r"deadline_ms: expected a positive number of milliseconds for one replanning call, got "):
        policy.act(obs(), deadline_ms=bad)
    assert not policy._rows  # refused before any state changed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_each_budget_it_may_choose_gets_its_own_graph():
    cpu = make_policy()
    from shortcut_policy.policy import Policy

    policy = Policy(cpu.network, cpu.normalizer, cpu.objective, cpu.contract, "cuda", cuda_graph=True)
    policy.reset(seed=3)
    fixed = Policy(cpu.network, cpu.normalizer, cpu.objective, cpu.contract, "cuda", cuda_graph=True)
    fixed.reset(seed=3)
    # everything fits: every budget measured, each through its own graph, and the actions are 128 steps'
    np.testing.assert_allclose(policy.act(obs(), deadline_ms=1e6), fixed.act(obs(), steps=128), rtol=1e-5, atol=1e-4)
    assert policy.last_steps == 128
    assert sorted(policy._graphs) == [(s, 1) for s in [1, 2, 4, 8, 16, 32, 64, 128]]
