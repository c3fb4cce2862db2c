"""The jerk of executed actions, as every evaluation reports it."""

import numpy as np
import pytest

from shortcut_policy.evaluation.smoothness import action_jerk, mean_jerk


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
