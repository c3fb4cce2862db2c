"""The arithmetic of the multimodality measurement (spread, off-sample distance, roughness)."""

import numpy as np
import pytest

from shortcut_policy.evaluation import multimodality


@pytest.fixture(scope="module")
def mm():
    return multimodality


def test_spread_is_zero_for_identical_samples_and_the_distance_to_the_mean_otherwise(mm):
    chunk = np.random.default_rng(0).uniform(0, 500, (1, 1, 8, 2))
    assert mm.spread(np.repeat(chunk, 4, axis=1)) == pytest.approx([0.0])
    two_modes = np.concatenate([chunk, chunk + [3.0, 4.0]], axis=1)  # 5 px apart at every action
    assert mm.spread(two_modes) == pytest.approx([2.5])


def test_off_sample_distance_finds_the_nearest_reference_and_skips_itself_within_one_set(mm):
    modes = np.stack([np.zeros((8, 2)), np.full((8, 2), 100.0)])[None]  # (1, 2, 8, 2): two far modes
    between = np.full((1, 2, 8, 2), 50.0)  # a one-step output at the mean of the two
    assert mm.off_sample_distance(between, modes, same=False) == pytest.approx([50.0 * np.sqrt(2)])
    assert mm.off_sample_distance(modes, modes, same=False) == pytest.approx([0.0])
    assert mm.off_sample_distance(modes, modes, same=True) == pytest.approx([100.0 * np.sqrt(2)])


def test_roughness_is_zero_along_a_straight_constant_speed_path(mm):
    line = np.stack([np.arange(8) * 3.0, np.arange(8) * -2.0], axis=-1)
    assert mm.roughness(line) == pytest.approx(0.0)
    zigzag = line + np.array([[0.0, 1.0], [0.0, -1.0]] * 4)
    assert mm.roughness(zigzag) == pytest.approx(4.0)  # second difference of +-1 alternation is +-4
