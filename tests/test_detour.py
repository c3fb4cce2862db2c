"""The synthetic detour env: its expert succeeds both ways round, its demonstrations are bimodal where
they start, and the mean of the two modes fails."""

import numpy as np
import pytest

from shortcut_policy.envs import get_env_spec
from shortcut_policy.envs.detour.env import DISC_RADIUS, STEP
from shortcut_policy.evaluation.multimodality import spread


def run_expert(seed: int):
    spec = get_env_spec("detour")
    env, expert = spec.make(), spec.make_expert(0)
    obs, _ = env.reset(seed=seed)
    expert.reset(seed=seed)
    actions, positions = [], [obs["pos"]]
    while True:
        actions.append(expert.act(obs, env))
        obs, _, terminated, truncated, info = env.step(actions[-1])
        positions.append(obs["pos"])
        if terminated or truncated:
            return np.array(actions), np.array(positions), info, expert.side


def test_the_expert_succeeds_on_both_sides_and_never_touches_the_disc():
    sides = []
    for seed in range(40):
        actions, positions, info, side = run_expert(seed)
        assert info["reached"], seed
        assert np.linalg.norm(positions, axis=1).min() > DISC_RADIUS + 0.05
        assert np.abs(actions).max() <= STEP + 1e-6
        sides.append(side)
    assert 10 < sum(s < 0 for s in sides) < 30  # a fair coin over 40 episodes


def test_demonstrations_from_one_start_are_bimodal_and_their_mean_fails():
    """The expert's first 16 actions from the same start, over 32 coin flips: two tight clusters."""
    spec = get_env_spec("detour")
    env = spec.make()
    chunks, sides = [], []
    for flip in range(32):
        obs, _ = env.reset(seed=7)
        expert = spec.make_expert(None)
        expert.reset(seed=flip)
        chunk = []
        for _ in range(16):
            chunk.append(expert.act(obs, env))
            obs, *_ = env.step(chunk[-1])
        chunks.append(chunk)
        sides.append(expert.side)
    chunks, sides = np.array(chunks), np.array(sides)
    assert set(sides) == {-1.0, 1.0}
    within = max(spread(chunks[None, sides == s])[0] for s in (-1.0, 1.0))
    overall = spread(chunks[None])[0]
    assert within < 1e-6 < 0.03 < overall  # the spread is all between the two modes
    env.reset(seed=7)
    for action in chunks.mean(0).tolist() * 4:  # the mean of the modes, repeated: straight at the disc
        _, _, terminated, truncated, info = env.step(np.array(action))
        if terminated or truncated:
            break
    assert not info["reached"] and info["blocked"]


@pytest.mark.parametrize("bad", [np.array([0.1]), np.array([np.nan, 0.0])])
def test_a_bad_action_gets_a_clear_error(bad):
    env = get_env_spec("detour").make()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action: expected 2 finite numbers"):
        env.step(bad)


def test_renders_the_disc_the_goal_and_the_point():
    env = get_env_spec("detour").make(render_size=48)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    colours = {tuple(c) for c in frame.reshape(-1, 3)}
    assert {(128, 128, 128), (40, 180, 40), (220, 40, 40), (255, 255, 255)} <= colours
