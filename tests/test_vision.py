"""Image observations: the encoders, the crop, and a two-camera + low-dim policy from demos to actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import readme_episode
from gymnasium import spaces

from shortcut_policy import load_policy
from shortcut_policy.config import load_config
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.envs import ENVS, EnvSpec, ObsSpec, register_env, success_flag
from shortcut_policy.evaluation.rollout import beside, rollout
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.models.obs_encoder import ObsEncoder
from shortcut_policy.models.vision import Crop, ImageEncoder, SpatialSoftmax, VisionConfig
from shortcut_policy.objectives import OBJECTIVES, build_objective
from shortcut_policy.training.trainer import run


# ------------------------------------------------------------------------------------------ encoder
@pytest.mark.parametrize("encoder", ["small", "resnet18"])
def test_image_encoder_maps_frames_to_features(encoder):
    config = VisionConfig(encoder=encoder, num_kp=8, feature_dim=24)
    net = ImageEncoder(config).eval()
    out = net(torch.rand(3, 84, 84, 3) * 2 - 1)
    assert out.shape == (3, 24) and torch.isfinite(out).all()
    # the keypoints before the linear layer are expected coordinates, inside [-1, 1]
    keypoints = net.pool(net.trunk(net.crop(torch.rand(3, 3, 84, 84))))
    assert keypoints.shape == (3, 16) and keypoints.abs().max() <= 1


@pytest.mark.parametrize("height, width, row, col", [(16, 16, 2, 13), (16, 16, 10, 3), (16, 16, 0, 0), (16, 16, 15, 15), (6, 10, 1, 8)])
def test_spatial_softmax_keypoint_lands_on_the_bright_spot(height, width, row, col):
    pool = SpatialSoftmax(channels=1, num_kp=1)
    with torch.no_grad():
        pool.project.weight.fill_(1.0)
    features = torch.zeros(1, 1, height, width)
    features[0, 0, row, col] = 50.0  # one bright spot on a dark map
    x, y = pool(features)[0].tolist()
    assert x == pytest.approx(float(torch.linspace(-1, 1, width)[col]), abs=1e-4)
    assert y == pytest.approx(float(torch.linspace(-1, 1, height)[row]), abs=1e-4)


def test_the_encoder_reads_stored_images_rows_as_y_and_columns_as_x():
    """Channels-last frames (N, H, W, 3), as stores keep them: with the trunk taken out, the keypoint of a
    bright pixel at (row, col) of a non-square image is (x of col, y of row)."""
    net = ImageEncoder(VisionConfig(crop_ratio=1.0, num_kp=1)).eval()
    net.trunk, net.pool, net.out = torch.nn.Identity(), SpatialSoftmax(channels=3, num_kp=1), torch.nn.Identity()
    with torch.no_grad():
        net.pool.project.weight.fill_(20.0)
    images = -torch.ones(2, 12, 20, 3)
    images[0, 3, 17], images[1, 10, 2] = 1.0, 1.0
    keypoints = net(images)  # (2, 2): (x, y) per image
    xs, ys = torch.linspace(-1, 1, 20), torch.linspace(-1, 1, 12)
    assert torch.allclose(keypoints, torch.tensor([[xs[17], ys[3]], [xs[2], ys[10]]]), atol=1e-4)


def test_crop_is_random_in_training_and_central_when_acting():
    crop = Crop(0.75)
    images = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8).repeat(16, 1, 1, 1)  # (32, 1, 8, 8)
    crop.eval()
    centre = crop(images)
    assert centre.shape == (32, 1, 6, 6) and torch.equal(centre, images[:, :, 1:7, 1:7])
    crop.train()
    torch.manual_seed(0)
    crops = crop(images)
    assert crops.shape == (32, 1, 6, 6)
    offsets = set()
    for image, cropped in zip(images, crops):  # each crop is a 6x6 window of its own image
        windows = {(t, left) for t in range(3) for left in range(3) if torch.equal(image[:, t : t + 6, left : left + 6], cropped)}
        assert windows, "a crop is not a window of its image"
        offsets |= windows
    assert len(offsets) > 3  # random offsets, not one fixed window
    assert torch.equal(Crop(1.0).train()(images), images)


def test_cameras_are_encoded_per_frame_beside_low_dim_keys():
    vision = VisionConfig(num_kp=4, feature_dim=5)
    encoder = ObsEncoder(obs_features({"pos": (2,), "top": (24, 24, 3), "side": (24, 24, 3)}, rgb=["top", "side"]), n_obs_steps=2, vision=vision).eval()
    assert set(encoder.images) == {"top", "side"} and encoder.out_dim == 2 * (2 + 5 + 5)
    obs = {"pos": torch.arange(4.0).view(1, 2, 2), "top": torch.rand(1, 2, 24, 24, 3), "side": torch.rand(1, 2, 24, 24, 3)}
    out = encoder(obs)[0]
    # frame-major: frame 0's pos, top, side features, then frame 1's
    assert torch.equal(out[:2], torch.tensor([0.0, 1.0])) and torch.equal(out[12:14], torch.tensor([2.0, 3.0]))
    # the same frame encoded alone (a batch of 1, not 2: float rounding of another conv batch)
    assert torch.allclose(out[2:7], encoder.images["top"](obs["top"][:, 0])[0], rtol=1e-4, atol=1e-6)
    assert torch.allclose(out[19:24], encoder.images["side"](obs["side"][:, 1])[0], rtol=1e-4, atol=1e-6)
    shared = ObsEncoder(obs_features({"top": (24, 24, 3), "side": (24, 24, 3)}, rgb=["top", "side"]), 2, VisionConfig(share=True))
    assert list(shared.images) == ["shared"]


def test_bad_image_shapes_are_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"obs_keys: an image key is \(height, width, 3\) RGB, got 'depth' with shape \(32, 32, 1\)"):
        ObsEncoder(obs_features({"depth": (32, 32, 1)}, rgb=["depth"]), 2)
    with pytest.raises(ValueError, match=r"obs_keys: 'img' is 8x8, cropped to 7x7 \(policy.vision.crop_ratio=0.875\); "
                                         r"policy.vision.encoder='small' makes a 1x1 map of it, expected at least 2x2"):
        ObsEncoder(obs_features({"img": (8, 8, 3)}, rgb=["img"]), 2)
    # ResNet-18 shrinks by 32: a 36-pixel image (32 cropped) would be one pixel, the same keypoint for any image
    with pytest.raises(ValueError, match=r"'img' is 36x36, cropped to 32x32 .*encoder='resnet18' makes a 1x1 map"):
        ObsEncoder(obs_features({"img": (36, 36, 3)}, rgb=["img"]), 2, VisionConfig(encoder="resnet18"))
    ObsEncoder(obs_features({"img": (40, 40, 3)}, rgb=["img"]), 2, VisionConfig(encoder="resnet18"))  # 35 cropped -> 2x2: accepted
    with pytest.raises(ValueError, match=r"policy.vision.encoder: expected one of \['resnet18', 'small'\], got 'vit'"):
        load_config({"policy": {"vision": {"encoder": "vit"}}})
    with pytest.raises(ValueError, match=r"policy.vision.crop_ratio: expected a share of the image side in \(0, 1\], got 1.5"):
        load_config({"policy": {"vision": {"crop_ratio": 1.5}}})


def test_a_low_dim_policy_does_not_depend_on_the_vision_options():
    """Without camera keys the encoder has no parameters, so the network (and its random initialisation)
    is the backbone's alone, whatever ``policy.vision`` says."""
    states = []
    for vision in ({}, {"encoder": "resnet18", "share": True, "feature_dim": 7}):
        torch.manual_seed(0)
        net = build_network(load_config({"policy": {"vision": vision}}).policy, obs_features({"keypoint": (18,)}), 2)
        assert not list(net.encoder.parameters())
        states.append(net.state_dict())
    assert states[0].keys() == states[1].keys() and all(torch.equal(states[0][k], states[1][k]) for k in states[0])


# ------------------------------------------------------------------------- two cameras, end to end
SIZE, MAX_STEPS, STEP = 24, 20, 0.25


class TwoCameraPoint(gym.Env):
    """A point in [-1, 1]^2 that must reach a goal; the policy sees the point's position and two cameras:
    ``top`` draws the goal, ``side`` draws the point (so the goal is only in an image)."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self) -> None:
        image = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "top": image, "side": image})
        self.action_space = spaces.Box(-STEP, STEP, (2,))

    def _draw(self, point: np.ndarray) -> np.ndarray:
        frame = np.zeros((SIZE, SIZE, 3), np.uint8)
        x, y = np.round((point + 1) / 2 * (SIZE - 3)).astype(int)
        frame[y : y + 3, x : x + 3] = 255
        return frame

    def _obs(self) -> dict[str, np.ndarray]:
        return {"pos": self.pos.copy(), "top": self._draw(self.goal), "side": self._draw(self.pos)}

    def reset(self, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos, self.goal = self.np_random.uniform(-0.8, 0.8, (2, 2))
        return self._obs(), {}

    def step(self, action):
        self.pos = np.clip(self.pos + np.clip(action, -STEP, STEP), -1, 1)
        reached = bool(np.linalg.norm(self.pos - self.goal) < 0.15)
        return self._obs(), 0.0, reached, False, {"reached": reached}

    def render(self) -> np.ndarray:
        return np.maximum(self._draw(self.goal), self._draw(self.pos))


def make_two_camera_point(obs_keys=(), image_size=None, render_size=None, max_episode_steps=None) -> gym.Env:
    return gym.wrappers.TimeLimit(TwoCameraPoint(), max_episode_steps or MAX_STEPS)


class GoalExpert:
    """Heads for the goal, which it reads from the simulator (the policy only sees it in ``top``)."""

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, obs, env) -> np.ndarray:
        return np.clip(env.unwrapped.goal - obs["pos"], -STEP, STEP)


SPEC = EnvSpec(
    name="two_camera_point",
    make=make_two_camera_point,
    obs={"pos": ObsSpec((2,)), "top": ObsSpec((SIZE, SIZE, 3), "rgb"), "side": ObsSpec((SIZE, SIZE, 3), "rgb")},
    action_dim=2,
    max_episode_steps=MAX_STEPS,
    success=success_flag("reached"),
    default_obs_keys=("pos", "top", "side"),
    make_expert=lambda seed: GoalExpert(),
)


@pytest.fixture
def two_camera_point():
    register_env(SPEC)
    yield SPEC
    ENVS.pop(SPEC.name)


def test_a_two_camera_and_low_dim_policy_trains_and_acts(two_camera_point, tmp_path):
    store = generate_demos("two_camera_point", episodes=6, seed=1_000, out=tmp_path / "demos.zarr", image=True, progress=False)
    buffer = ReplayBuffer.open(store)
    assert buffer.data["top"].dtype == np.uint8 and buffer.data["top"].shape[1:] == (SIZE, SIZE, 3)
    config = load_config({
        "env": {"name": "two_camera_point", "dataset": str(store)},
        "policy": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32]}, "vision": {"num_kp": 4, "feature_dim": 8}},
        "train": {"num_steps": 6, "batch_size": 4, "warmup_steps": 1, "val_every": 6, "checkpoint_every": 6, "log_every": 3,
                  "eval_episodes": 1, "eval_steps": [1]},
    })
    run(config, tmp_path / "run", progress=False)
    policy = load_policy(tmp_path / "run")
    assert policy.obs_shapes == {"pos": (2,), "top": (SIZE, SIZE, 3), "side": (SIZE, SIZE, 3)}
    assert set(policy.network.encoder.images) == {"top", "side"} and not policy.network.training  # centre crops
    env = make_two_camera_point()
    obs, _ = env.reset(seed=0)
    policy.reset(seed=0)
    calls = []
    policy.network.encoder.images["top"].register_forward_hook(lambda *args: calls.append(1))
    actions = [policy.act(obs, steps=4) for _ in range(5)]  # replans at the first and the fifth call
    assert all(a.shape == (2,) and np.isfinite(a).all() for a in actions)
    assert len(calls) == 2  # once per replanning call, not once per denoising step
    # evaluation runs the act() a robot calls: the README's loop and a rollout agree action for action
    [episode] = rollout(policy, "two_camera_point", seeds=[2], steps=2, noise_seed=5, progress=False)
    looped, _ = readme_episode(policy, make_two_camera_point(), 2, 2, noise_seed=5)
    np.testing.assert_array_equal(np.stack(episode.actions), looped)
    # the encoder runs once per training batch too, with every objective: shortcut's two half steps and MeanFlow's
    # forward-mode pass reuse the encoded features
    network = policy.network.train().requires_grad_(True)
    batch = {k: torch.as_tensor(np.stack([obs[k]] * 2)[None].repeat(8, 0), dtype=torch.float32) for k in policy.obs_keys}
    for name in OBJECTIVES:
        calls.clear()
        build_objective({"name": name}).loss(network, torch.randn(8, 8, 2), batch)
        assert len(calls) == 1, name
    network.eval().requires_grad_(False)
    # the videos show what the policy saw: the env's frame, then each camera
    [episode] = rollout(policy, "two_camera_point", seeds=[0], steps=1, n_videos=1, progress=False)
    first = make_two_camera_point()
    obs0, _ = first.reset(seed=0)
    assert episode.frames[0].shape == (SIZE, 3 * SIZE, 3) and len(episode.frames) == episode.length + 1
    assert np.array_equal(episode.frames[0], np.concatenate([first.render(), obs0["top"], obs0["side"]], axis=1))
    with pytest.raises(ValueError, match=r"obs\['top'\]: expected shape \(24, 24, 3\), got \(24, 24\)"):
        policy.act({**obs, "top": obs["top"][..., 0]})


def test_video_frames_put_the_cameras_beside_the_env_frame_scaled_by_a_whole_factor():
    frame = np.full((100, 120, 3), 7, np.uint8)
    image = np.arange(24 * 24 * 3, dtype=np.uint8).reshape(24, 24, 3)
    out = beside(frame, {"cam": image, "pos": np.zeros(2)}, ["cam"])
    assert out.shape == (100, 120 + 96, 3)  # 24 pixels scaled 4 times, 4 rows of black below
    assert np.array_equal(out[:, :120], frame) and np.array_equal(out[:96:4, 120::4], image) and not out[96:, 120:].any()
    assert beside(frame, {}, []) is frame


def test_image_demonstrations_have_their_own_default_store(tmp_path, monkeypatch):
    from shortcut_policy.data.demos import ensure_dataset

    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path))
    env = load_config({"env": {"obs_keys": ["img", "agent_pos"], "demo_episodes": 1}}).env
    path = ensure_dataset(env, progress=False)
    assert path == tmp_path / "push_t_expert_images.zarr" and not (tmp_path / "push_t_expert.zarr").exists()
    buffer = ReplayBuffer.open(path)
    assert buffer.data["img"].dtype == np.uint8 and buffer.data["img"].shape[1:] == (96, 96, 3)
    assert np.array_equal(buffer.data["agent_pos"], buffer.data["state"][:, :2])
    assert ensure_dataset(env, progress=False) == path  # found again, not regenerated


def test_float_image_stores_train_as_uint8_and_other_pixel_ranges_are_refused(two_camera_point, tmp_path):
    """Diffusion Policy's Push-T store keeps ``img`` as float32 of 0..255: it must read as the uint8 store
    does, with the fixed 0..255 scale (not per-pixel statistics)."""
    from shortcut_policy.data.replay_buffer import DatasetError
    from shortcut_policy.training.trainer import Trainer

    store = generate_demos("two_camera_point", episodes=2, seed=1_000, out=tmp_path / "demos.zarr", image=True, progress=False)
    uint8 = ReplayBuffer.open(store)
    as_float = {k: v.astype(np.float32) if k in ("top", "side") else v for k, v in uint8.data.items()}
    floats = ReplayBuffer(as_float, uint8.episode_ends, dict(uint8.attrs)).save(tmp_path / "floats.zarr")
    trainers = []
    for path in (store, floats):
        config = load_config({"env": {"name": "two_camera_point", "dataset": str(path)},
                              "policy": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32]}},
                              "train": {"eval_episodes": 0}})
        trainers.append(Trainer(config, tmp_path / f"run_{path.stem}", progress=False))
    ours, theirs = trainers
    assert theirs.demos.buffer.data["top"].dtype == np.uint8 and np.array_equal(theirs.demos.buffer.data["top"], uint8.data["top"])
    state = theirs.normalizer.state_dict()
    assert state.keys() == ours.normalizer.state_dict().keys()
    assert all(torch.equal(v, ours.normalizer.state_dict()[k]) for k, v in state.items())
    assert all(v.shape == () for k, v in state.items() if "top" in k and v.is_floating_point())  # one scalar range

    for values, expected in [(as_float["top"] / 255.0, r"got float32 values in \[0.0, 1.0\], which look scaled to \[0, 1\]"),
                             (as_float["top"] + 1.0, r"got float32 values in \[1.0, 256.0\]"),
                             (np.where(as_float["top"] > 0, np.nan, 0.0).astype(np.float32), r"values in \[nan, nan\]")]:
        buffer = ReplayBuffer({**as_float, "top": values}, uint8.episode_ends)
        with pytest.raises(DatasetError, match=r"data/top: expected image pixels in 0\.\.255.* " + expected):
            buffer.images_to_uint8(["top"])
