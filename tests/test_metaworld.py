"""Meta-World behind the env contract: tasks, reproducible starts apart from the demonstrations', episodes
ending at first success, the shipped experts as demonstrators, and a policy trained on a 2-episode store
that rolls out."""

from __future__ import annotations

import numpy as np
import pytest

from shortcut_policy import make_env
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.envs import get_env_spec

metaworld = pytest.importorskip("metaworld")  # the test extra installs it; CI runs these


def test_the_task_list_is_metaworlds():
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    from metaworld.policies import ENV_POLICY_MAP

    spec = get_env_spec("metaworld")
    assert set(spec.tasks) == set(ALL_V3_ENVIRONMENTS) == set(ENV_POLICY_MAP)
    grouped = [t for members in spec.task_groups.values() for t in members]
    assert sorted(grouped) == sorted(spec.tasks) and len(grouped) == 50  # every task in exactly one group
    assert {g: len(m) for g, m in spec.task_groups.items()} == {"easy": 28, "medium": 11, "hard": 6, "very hard": 5}


def test_a_seed_always_gives_the_same_start_and_goal():
    env = make_env("metaworld", task="pick-place-v3")
    first, _ = env.reset(seed=7)
    env.step(np.ones(4))
    other, _ = env.reset(seed=8)
    again, _ = env.reset(seed=7)
    fresh, _ = make_env("metaworld", task="pick-place-v3").reset(seed=7)
    assert np.array_equal(first["state"], again["state"]) and np.array_equal(first["state"], fresh["state"])
    assert not np.allclose(first["state"][4:7], other["state"][4:7])  # the object moved between seeds
    assert not np.allclose(first["state"][-3:], other["state"][-3:])  # so did the goal, which is observed
    assert np.allclose(first["state"][-3:], env.unwrapped._sim._target_pos)
    # the demonstration seeds (from 100000) start elsewhere than the test seeds (0..49)
    tests = {tuple(np.round(env.reset(seed=s)[0]["state"][4:7], 6)) for s in range(50)}
    demos = {tuple(np.round(env.reset(seed=s)[0]["state"][4:7], 6)) for s in range(100_000, 100_030)}
    assert len(tests) == 50 and not tests & demos
    env.close()


def test_episodes_end_at_first_success_or_at_the_limit():
    spec = get_env_spec("metaworld").configure("reach-v3", max_episode_steps=150)
    env, expert = spec.make(), spec.make_expert(0)
    obs, _ = env.reset(seed=0)
    for step in range(1, 151):
        obs, _, terminated, truncated, info = env.step(expert.act(obs, env))
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"] == 1.0 and step < 150
    short = get_env_spec("metaworld").configure("reach-v3", max_episode_steps=5).make()
    short.reset(seed=0)
    ends = [short.step(np.zeros(4))[2:4] for _ in range(5)]
    assert ends == [(False, False)] * 4 + [(False, True)]
    with pytest.raises(ValueError, match="reset: expected a seed"):
        make_env("metaworld", task="reach-v3").reset()


def test_frames_are_rendered_at_the_size_asked():
    env = make_env("metaworld", task="reach-v3", render_size=64)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_the_camera_observation_is_the_videos_view_and_the_hand_the_states_start():
    env = make_env("metaworld", task="button-press-topdown-v3", obs_keys=["corner_image", "hand"], render_size=84)
    obs, _ = env.reset(seed=0)
    for _ in range(2):
        image = obs["corner_image"]
        assert image.shape == (84, 84, 3) and image.dtype == np.uint8 and image.std() > 0
        assert np.array_equal(image, env.render())  # same camera, same size, right side up
        assert np.array_equal(obs["hand"], obs["state"][:4])
        obs, *_ = env.step(np.ones(4))
    env.close()
    assert "corner_image" not in make_env("metaworld", task="reach-v3").reset(seed=0)[0]  # rendered only when asked


def test_the_camera_image_is_right_side_up_and_not_mirrored():
    """Paint the hand green: its pixels sit where the corner camera's pinhole projection of the hand falls,
    turned half a turn (a rotation of the camera's view, not a mirror), and a point above the hand lands
    higher in the image (the world's up is up)."""
    env = make_env("metaworld", task="button-press-topdown-v3", obs_keys=["corner_image"])
    sim = env.unwrapped._sim
    model, hand = sim.model, sim.model.body("hand").id

    def on_hand(body: int) -> bool:
        while body not in (0, hand):
            body = model.body_parentid[body]
        return body == hand

    model.geom_rgba[[g for g in range(model.ngeom) if on_hand(model.geom_bodyid[g])]] = (0, 1, 0, 1)
    image = env.reset(seed=0)[0]["corner_image"].astype(int)
    rows, cols = np.nonzero((image[..., 1] > 2 * image[..., 0] + 20) & (image[..., 1] > 2 * image[..., 2] + 20))
    camera = model.camera("corner").id
    rotation, position = sim.data.cam_xmat[camera].reshape(3, 3), sim.data.cam_xpos[camera]
    side = image.shape[0]
    focal = side / 2 / np.tan(np.radians(model.cam_fovy[camera]) / 2)

    def pixel(point: np.ndarray) -> np.ndarray:  # (row, col) in the camera's own view: x right, y up, looking down -z
        x, y, z = rotation.T @ (point - position)
        return np.array([(side - 1) / 2 - focal * y / -z, (side - 1) / 2 + focal * x / -z])

    hand_at = side - 1 - pixel(sim.data.xpos[hand])  # the view turned half a turn
    assert len(rows) >= 5 and np.abs(np.array([rows.mean(), cols.mean()]) - hand_at).max() < 2.0
    above = side - 1 - pixel(sim.data.xpos[hand] + np.array([0.0, 0.0, 0.2]))
    assert above[0] < hand_at[0] - 5
    env.close()


def test_noisy_demonstrations_record_the_experts_own_actions(tmp_path):
    spec = get_env_spec("metaworld").configure("reach-v3")
    path = generate_demos(spec, episodes=2, seed=100_000, out=tmp_path / "noisy.zarr", progress=False, noise=0.3)
    buffer = ReplayBuffer.open(path)
    assert buffer.attrs["action_noise"] == 0.3 and buffer.attrs["env"] == "metaworld_reach-v3"
    states, actions = buffer.data["state"][:], buffer.data["action"][:]
    expert = spec.make_expert(0)
    recomputed = np.stack([expert.act({"state": s.astype(np.float64)}) for s in states])
    assert np.allclose(recomputed, actions, atol=1e-5)  # the clean action, not the executed noisy one
    clean = ReplayBuffer.open(generate_demos(spec, episodes=2, seed=100_000, out=tmp_path / "clean.zarr", progress=False))
    n = min(clean.episode_ends[0], buffer.episode_ends[0])  # the first episodes, same start, over their common length
    assert np.array_equal(clean.data["state"][0], states[0])
    assert not np.allclose(clean.data["state"][1:n], states[1:n])  # the noise moved the arm


@pytest.mark.slow
def test_trains_on_a_two_episode_store_and_rolls_out(tmp_path, train_tiny):
    spec = get_env_spec("metaworld").configure("reach-v3")
    store = generate_demos(spec, episodes=2, seed=100_000, out=tmp_path / "demos.zarr", progress=False)
    report = train_tiny({"name": "metaworld", "task": "reach-v3", "dataset": str(store), "max_episode_steps": 40}, steps=20)
    assert report["env"] == "metaworld_reach-v3"
    (row,) = report["rows"]
    assert row["episodes"] == 1 and 1 <= row["per_episode"][0]["length"] <= 40
    assert sorted(p.name for p in (tmp_path / "run" / "eval" / "videos").iterdir()) == ["steps001_seed0.mp4"]
