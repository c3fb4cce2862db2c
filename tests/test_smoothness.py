"""The jerk of executed actions, as every evaluation reports it."""

import math

import numpy as np
import pytest

from shortcut_policy.data.replay_buffer import ReplayBuffer
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.evaluation.smoothness import action_jerk, chunk_jerk, mean_jerk
from shortcut_policy.evaluation.sweep import action_scale, demonstration_smoothness


def test_a_constant_velocity_has_no_jerk_and_a_known_sequence_has_its_own():
    line = np.stack([np.arange(10.0), 2 * np.arange(10.0)], axis=1)  # (T, 2) moving at constant velocity
    assert action_jerk(line) == 0.0
    # a zigzag in one axis: the second differences alternate -2, +2
    zigzag = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    assert action_jerk(zigzag) == pytest.approx(2.0)
    assert action_jerk(list(zigzag)) == action_jerk(zigzag)  # a list of (A,) arrays, as rollouts record


def test_too_short_or_non_finite_actions_have_no_jerk():
    assert action_jerk(np.zeros((2, 2))) is None
    assert mean_jerk([None, 1.0, 3.0]) == 2.0 and mean_jerk([None]) is None
    with pytest.raises(ValueError, match="non-finite"):
        action_jerk(np.array([[0.0], [np.nan], [1.0]]))
    with pytest.raises(ValueError, match="actions: expected an array \\(T, action_dim\\), got shape \\(5,\\)"):
        action_jerk(np.zeros(5))


def test_the_jerk_splits_at_chunk_boundaries_as_counted_by_hand():
    """Two chunks of 4 ticks, each moving at constant velocity, the second starting 3 units off: every
    window inside a chunk has no jerk; the two windows across the cut (centred on ticks 3 and 4) have."""
    a = np.array([[0.0], [1.0], [2.0], [3.0], [7.0], [8.0], [9.0], [10.0]])  # (T=8, A=1), a chunk starts at tick 4
    parts = chunk_jerk(a, [0, 4])
    # windows centred on ticks 1..6: 0, 0, |7 - 6 + 2| = 3, |8 - 14 + 3| = 3, 0, 0
    assert parts["boundary"] == pytest.approx(3.0) and parts["interior"] == 0.0
    assert parts["jerk"] == pytest.approx(6.0 / 6) == action_jerk(a)
    assert chunk_jerk(a, [0])["boundary"] is None  # one chunk: no boundary
    halved = chunk_jerk(a, [0, 4], scale=np.array([0.5]))  # the policy's normalized units
    assert halved["boundary"] == pytest.approx(1.5) and halved["jerk"] == pytest.approx(0.5)


def test_a_rollout_records_where_its_chunks_start(chunk_of_4_policy):
    """With n_action_steps = 4, a synchronous rollout starts a chunk every 4 ticks from tick 0."""
    policy, env = chunk_of_4_policy
    for result in rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0):
        assert result.chunk_starts == list(range(0, result.length, 4)), result.chunk_starts


def test_the_demonstrations_reference_cuts_them_where_the_policy_chunks(chunk_of_4_policy, tmp_path):
    policy, _ = chunk_of_4_policy
    store = tmp_path / "demos.zarr"
    episode = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [7.0, 0.0], [8.0, 0.0]])
    ReplayBuffer(data={"action": episode}, episode_ends=np.array([6])).save(store)
    reference = demonstration_smoothness(policy, store)
    assert (reference["episodes"], reference["period"]) == (1, 4)
    assert reference["boundary_jerk"] == pytest.approx(3.0) and reference["interior_jerk"] == 0.0  # windows on ticks 3, 4 / 1, 2
    scale = action_scale(policy)
    assert reference["jerk_normalized"] == pytest.approx(np.mean([0, 0, 3, 3]) * abs(scale[0]))
    assert demonstration_smoothness(policy, tmp_path / "gone.zarr") is None


def test_temporal_ensembling_averages_every_plan_for_this_tick_with_acts_weights(chunk_of_4_policy, monkeypatch):
    """The c-th plan (c = 0, 1, ...) is the chunk c*10 + h, h = 0..7; executed from h = 1 (2 observed frames),
    it holds actions for 7 ticks. At tick t the plans made at ticks t-6..t each give their action for t."""
    policy, _ = chunk_of_4_policy
    calls = []

    def planned(batch, steps, generator=None, validate=True, full=False):
        assert full  # ensembling needs the whole chunk
        calls.append(len(calls))
        return (10.0 * calls[-1] + np.arange(8.0))[None, :, None] * np.ones((1, 1, 2))  # (1, H=8, A=2)

    monkeypatch.setattr(policy, "predict_chunk", planned)
    obs = {k: np.zeros(policy.obs_shapes[k], dtype=np.float32) for k in policy.obs_keys}
    try:
        policy.temporal_ensemble = 0.0
        policy.reset()
        assert policy.act(obs)[0] == 1.0  # one plan: its action 1
        assert policy.act(obs)[0] == pytest.approx((2 + 11) / 2)  # plan 0's action 2, plan 1's action 1
        assert policy.act(obs)[0] == pytest.approx((3 + 12 + 21) / 3)
        policy.temporal_ensemble = math.log(2)  # weights 1, 1/2, 1/4, ... from the oldest
        policy.reset()
        policy.act(obs)
        assert policy.act(obs)[0] == pytest.approx((1 * 32 + 0.5 * 41) / 1.5)  # plans 3 and 4
        for _ in range(10):
            policy.act(obs)
        assert len(policy._rows[0].planned) == 6  # 7 plans give each tick its action; the oldest is then spent
        assert policy.will_replan_rows([0]) == [True]  # it replans at every tick, though this loop has plans left
        with pytest.raises(ValueError, match=r"temporal_ensemble: expected None \(off\) or a decay m in \[0, 100\)"):
            policy.temporal_ensemble = -1.0
    finally:
        policy.temporal_ensemble = None


def test_an_ensembled_rollout_replans_every_tick_and_starts_each_episode_afresh(chunk_of_4_policy):
    policy, env = chunk_of_4_policy
    plain = rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0)
    policy.temporal_ensemble = 0.01
    try:
        first = rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0)
        again = rollout(policy, env, [0, 1, 2], steps=1, progress=False, workers=0)
    finally:
        policy.temporal_ensemble = None
    for a, b, c in zip(first, again, plain):
        np.testing.assert_array_equal(np.stack(a.actions), np.stack(b.actions))  # nothing of an episode carries over
        assert not np.array_equal(np.stack(a.actions), np.stack(c.actions))
        assert a.chunk_starts == []  # no chunk is executed as such: the jerk has no boundary part
        np.testing.assert_array_equal(np.stack(a.actions)[0], np.stack(c.actions)[0])  # one plan at the first tick: its action
