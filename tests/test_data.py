"""Data layer: DP zarr layout, padded windows, episode split, normalizer."""

from __future__ import annotations

import os

import numcodecs
import numpy as np
import pytest
import torch
import zarr

import shortcut_policy.data.replay_buffer as rb_module
from shortcut_policy.data import DatasetError, MinMaxNormalizer, ReplayBuffer, SequenceSampler, split_episodes


def make_buffer(lengths=(5, 3), attrs=None) -> ReplayBuffer:
    """Frame t of the whole buffer has state = [t, 100 + t] and action = [t], so windows are readable."""
    n = sum(lengths)
    t = np.arange(n, dtype=np.float32)
    data = {"state": np.stack([t, 100 + t], axis=1), "action": t[:, None].copy()}
    return ReplayBuffer(data, np.cumsum(lengths), attrs=attrs)


def leftovers(tmp_path, name: str) -> list[str]:
    """Temp and moved-aside stores a save of ``name`` made (``.<name>.tmp-<pid>-...``)."""
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((f".{name}.tmp-", f".{name}.old-")))


# ---------------------------------------------------------------- sampler
def test_padding_at_both_ends_matches_dp_rule():
    buf = make_buffer((5,))
    s = SequenceSampler(buf, horizon=4, n_obs_steps=2, n_action_steps=3, obs_keys=["state"])
    # pad_before = 1, pad_after = 2: starts -1..(5 - 4 + 2) = 3 -> 5 windows, edge frames repeated.
    expected = np.array([[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 4], [3, 4, 4, 4]])
    assert len(s) == 5
    np.testing.assert_array_equal(s.indices, expected)
    batch = s.sample(np.arange(5))
    np.testing.assert_array_equal(batch["action"][..., 0], expected.astype(np.float32))
    np.testing.assert_array_equal(batch["obs"]["state"][..., 0], expected[:, :2].astype(np.float32))
    assert batch["obs"]["state"].shape == (5, 2, 2) and batch["action"].shape == (5, 4, 1)
    assert batch["action"].dtype == np.float32
    one = s[0]
    np.testing.assert_array_equal(one["obs"]["state"], [[0, 100], [0, 100]])
    np.testing.assert_array_equal(one["action"][:, 0], [0, 0, 1, 2])
    np.testing.assert_array_equal(s[-1]["action"][:, 0], [3, 4, 4, 4])


def test_windows_never_mix_episodes_and_count_matches_formula():
    lengths = (5, 3, 7, 1)
    buf = make_buffer(lengths)
    h, no, na = 4, 2, 3
    s = SequenceSampler(buf, horizon=h, n_obs_steps=no, n_action_steps=na, obs_keys=["state"])
    assert len(s) == sum(L - h + no + na - 1 for L in lengths)  # DP: (L - h + pad_after) - (-pad_before) + 1
    ends = buf.episode_ends
    starts = ends - buf.episode_lengths
    for row, ep in zip(s.indices, s.window_episode):
        assert np.all((row >= starts[ep]) & (row < ends[ep]))
        assert np.all(np.diff(row) >= 0) and np.all(np.diff(row) <= 1)
    assert sorted(set(s.window_episode.tolist())) == [0, 1, 2, 3]


def test_short_episode_still_gives_one_fully_padded_window():
    buf = make_buffer((2, 20))
    # DP's rule gives no window for L=2 with horizon 16, n_obs 2, n_action 8 (2 - 16 + 7 < -1).
    s = SequenceSampler(buf, horizon=16, n_obs_steps=2, n_action_steps=8, obs_keys=["state"], episodes=[0])
    assert len(s) == 1
    np.testing.assert_array_equal(s.indices[0], [0, 0] + [1] * 14)
    long = SequenceSampler(buf, horizon=16, n_obs_steps=2, n_action_steps=8, obs_keys=["state"], episodes=[1])
    assert len(long) == 20 - 16 + 2 + 8 - 1


def test_sampler_keeps_uint8_images_and_selects_episodes():
    lengths = (3, 4)
    img = np.arange(7 * 2 * 2 * 3, dtype=np.uint8).reshape(7, 2, 2, 3)
    buf = ReplayBuffer({"img": img, "action": np.zeros((7, 2), np.float64)}, np.cumsum(lengths))
    s = SequenceSampler(buf, horizon=2, n_obs_steps=2, n_action_steps=1, obs_keys=["img"], episodes=[1])
    b = s.sample(np.array([0, 1]))
    assert b["obs"]["img"].dtype == np.uint8 and b["obs"]["img"].shape == (2, 2, 2, 2, 3)
    assert b["action"].dtype == np.float32
    np.testing.assert_array_equal(b["obs"]["img"][0, 0], img[3])  # first window of episode 1 repeats frame 3
    assert set(s.window_episode.tolist()) == {1}


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(horizon=0, n_obs_steps=1, n_action_steps=1), "horizon"),
        (dict(horizon=4, n_obs_steps=5, n_action_steps=1), "n_obs_steps"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=4), "n_action_steps"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=0), "n_action_steps"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=2, obs_keys=["nope"]), "obs_keys"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=2, obs_keys="state"), "obs_keys"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=2, action_key="act"), "action_key"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=2, episodes=[2]), "episodes"),
        (dict(horizon=4, n_obs_steps=2, n_action_steps=2, episodes=[]), "episodes"),
    ],
)
def test_sampler_validation(kwargs, field):
    kwargs = {"obs_keys": ["state"], **kwargs}
    with pytest.raises(DatasetError, match=field):
        SequenceSampler(make_buffer(), **kwargs)


def test_sample_rejects_out_of_range_indices():
    s = SequenceSampler(make_buffer(), horizon=4, n_obs_steps=2, n_action_steps=2, obs_keys=["state"])
    with pytest.raises(DatasetError, match="indices"):
        s.sample(np.array([len(s)]))


# ---------------------------------------------------------------- split
def test_split_episodes_disjoint_covering_deterministic():
    train, val = split_episodes(20, 0.25, seed=3)
    assert len(val) == 5 and len(train) == 15
    assert set(train).isdisjoint(val) and sorted([*train, *val]) == list(range(20))
    t2, v2 = split_episodes(20, 0.25, seed=3)
    np.testing.assert_array_equal(train, t2)
    np.testing.assert_array_equal(val, v2)
    assert any(not np.array_equal(val, split_episodes(20, 0.25, seed=s)[1]) for s in range(4, 10))
    # at least one train episode, and one val episode when asked and possible
    assert [len(x) for x in split_episodes(2, 0.9, seed=0)] == [1, 1]
    assert [len(x) for x in split_episodes(10, 0.01, seed=0)] == [9, 1]
    assert [len(x) for x in split_episodes(1, 0.5, seed=0)] == [1, 0]
    assert [len(x) for x in split_episodes(5, 0.0, seed=0)] == [5, 0]
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(DatasetError, match="val_ratio"):
            split_episodes(5, bad, seed=0)


# ---------------------------------------------------------------- replay buffer validation
def test_buffer_validation_errors():
    state = np.zeros((8, 2))
    with pytest.raises(DatasetError, match="strictly increasing"):
        ReplayBuffer({"state": state}, np.array([5, 5, 8]))
    with pytest.raises(DatasetError, match="first end > 0"):
        ReplayBuffer({"state": state}, np.array([0, 8]))
    with pytest.raises(DatasetError, match="integer"):
        ReplayBuffer({"state": state}, np.array([5.0, 8.0]))
    with pytest.raises(DatasetError, match=r"data\['action'\].*expected length 8.*got length 7"):
        ReplayBuffer({"state": state, "action": np.zeros((7, 1))}, np.array([5, 8]))


def test_add_episode_grows_and_validates():
    buf = ReplayBuffer()
    assert buf.n_episodes == 0 and buf.n_steps == 0
    for length in (3, 1, 4, 2):
        buf.add_episode({"state": np.full((length, 2), length, np.float32), "action": np.zeros((length, 1), np.float32)})
    np.testing.assert_array_equal(buf.episode_ends, [3, 4, 8, 10])
    np.testing.assert_array_equal(buf.episode_lengths, [3, 1, 4, 2])
    assert buf.episode_slice(2) == slice(4, 8)
    np.testing.assert_array_equal(buf.get_episode(2)["state"], np.full((4, 2), 4))
    assert buf.data["state"].shape == (10, 2)
    with pytest.raises(DatasetError, match="missing \\['action'\\]"):
        buf.add_episode({"state": np.zeros((2, 2), np.float32)})
    with pytest.raises(DatasetError, match="dtype float32"):
        buf.add_episode({"state": np.zeros((2, 2)), "action": np.zeros((2, 1), np.float32)})
    with pytest.raises(DatasetError, match="same length"):
        buf.add_episode({"state": np.zeros((2, 2), np.float32), "action": np.zeros((3, 1), np.float32)})
    with pytest.raises(IndexError):
        buf.episode_slice(4)
    assert buf.n_episodes == 4  # failed adds changed nothing


# ---------------------------------------------------------------- zarr stores
def write_dp_style_store(path, rng) -> dict:
    """A store written exactly as Diffusion Policy writes one (zarr 2 calls, Blosc lz4)."""
    lengths = [4, 6, 3]
    n = sum(lengths)
    arrays = {
        "state": rng.normal(size=(n, 5)).astype(np.float32),
        "keypoint": rng.normal(size=(n, 9, 2)).astype(np.float32),
        "action": rng.uniform(0, 512, size=(n, 2)).astype(np.float32),
        "img": rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8),
        "n_contacts": rng.integers(0, 3, size=(n, 1)).astype(np.float32),
    }
    compressor = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
    root = zarr.open(str(path), "w")
    data = root.require_group("data")
    meta = root.require_group("meta")
    for key, value in arrays.items():
        data.array(key, value, chunks=(5, *value.shape[1:]), compressor=compressor, dtype=value.dtype)
    meta.array("episode_ends", np.cumsum(lengths).astype(np.int64), chunks=(3,), compressor=None)
    return {"episode_ends": np.cumsum(lengths), **arrays}


def test_dp_style_store_loads_unchanged(tmp_path):
    path = tmp_path / "pusht.zarr"
    expected = write_dp_style_store(path, np.random.default_rng(0))
    buf = ReplayBuffer.open(path)
    assert sorted(buf.keys) == ["action", "img", "keypoint", "n_contacts", "state"]
    np.testing.assert_array_equal(buf.episode_ends, expected["episode_ends"])
    for key in buf.keys:
        assert buf.data[key].dtype == expected[key].dtype
        np.testing.assert_array_equal(buf.data[key], expected[key])
    only = ReplayBuffer.open(str(path), keys=["img", "action"])
    assert sorted(only.keys) == ["action", "img"]


def test_open_validation_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        ReplayBuffer.open(tmp_path / "missing.zarr")
    path = tmp_path / "s.zarr"
    write_dp_style_store(path, np.random.default_rng(1))
    with pytest.raises(DatasetError, match=r"keys.*\['action', 'img', 'keypoint', 'n_contacts', 'state'\].*'velocity'"):
        ReplayBuffer.open(path, keys=["state", "velocity"])
    root = zarr.open(str(path), "r+")
    root["data"].zeros("short", shape=(5, 1), dtype=np.float32)
    with pytest.raises(DatasetError, match=r"data/short: expected length 13.*got length 5"):
        ReplayBuffer.open(path)
    del root["data/short"]
    root["meta"].array("episode_ends", np.array([4, 4, 13]), overwrite=True)
    with pytest.raises(DatasetError, match="meta/episode_ends.*strictly increasing"):
        ReplayBuffer.open(path)
    del root["meta/episode_ends"]
    with pytest.raises(DatasetError, match="meta/episode_ends"):
        ReplayBuffer.open(path)


def test_save_open_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    data = {
        "state": rng.normal(size=(9, 3)).astype(np.float64),
        "img": rng.integers(0, 256, size=(9, 8, 8, 3), dtype=np.uint8),
        "count": np.arange(9, dtype=np.int32)[:, None],
    }
    attrs = {"env": "push_t", "fps": 10, "nested": {"a": [1, 2]}}
    buf = ReplayBuffer(data, np.array([2, 7, 9]), attrs=attrs)
    out = buf.save(tmp_path / "d.zarr", chunk_len=4)
    assert out == tmp_path / "d.zarr" and leftovers(tmp_path, "d.zarr") == []
    back = ReplayBuffer.open(out)
    assert back.attrs == attrs
    np.testing.assert_array_equal(back.episode_ends, [2, 7, 9])
    for key, value in data.items():
        assert back.data[key].dtype == value.dtype
        np.testing.assert_array_equal(back.data[key], value)
    # on disk it is the DP layout in zarr format 2 with Blosc
    raw = zarr.open(str(out), "r")
    assert raw["data/img"].compressor.codec_id == "blosc" and raw["data/img"].chunks == (4, 8, 8, 3)
    assert (out / ".zgroup").is_file() and (out / "data" / "state" / ".zarray").is_file()

    with pytest.raises(DatasetError, match="overwrite"):
        buf.save(out)
    smaller = ReplayBuffer({"state": data["state"][:2]}, np.array([2]))
    smaller.save(out, overwrite=True)
    assert ReplayBuffer.open(out).keys == ["state"] and leftovers(tmp_path, "d.zarr") == []
    with pytest.raises(DatasetError, match="empty"):
        ReplayBuffer().save(tmp_path / "empty.zarr")
    (tmp_path / "notes").mkdir()
    with pytest.raises(DatasetError, match="not one"):
        smaller.save(tmp_path / "notes", overwrite=True)  # refuses to delete a non-store directory


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_save_is_atomic(tmp_path, monkeypatch, exc):
    buf = make_buffer()
    real_write = rb_module._write_array
    calls = []

    def failing_write(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:  # the first array is already on disk
            raise exc
        real_write(*args, **kwargs)

    monkeypatch.setattr(rb_module, "_write_array", failing_write)
    target = tmp_path / "a.zarr"
    with pytest.raises(type(exc)):
        buf.save(target)
    assert not target.exists() and leftovers(tmp_path, "a.zarr") == []

    # a failed overwrite leaves the previous store intact
    monkeypatch.setattr(rb_module, "_write_array", real_write)
    buf.save(target)
    calls.clear()
    monkeypatch.setattr(rb_module, "_write_array", failing_write)
    with pytest.raises(type(exc)):
        make_buffer((2, 2)).save(target, overwrite=True)
    np.testing.assert_array_equal(ReplayBuffer.open(target).episode_ends, [5, 8])
    assert leftovers(tmp_path, "a.zarr") == []
    assert sorted(os.listdir(tmp_path)) == ["a.zarr"]


# ---------------------------------------------------------------- normalizer
def test_normalizer_maps_to_unit_range_and_round_trips():
    rng = np.random.default_rng(4)
    state = rng.uniform(-3, 7, size=(200, 3)).astype(np.float32)
    state[:, 1] = 42.0  # constant dimension
    norm = MinMaxNormalizer.fit({"state": state})
    y = norm.normalize("state", torch.from_numpy(state))
    assert y.dtype == torch.float32 and y.shape == (200, 3)
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    for d in (0, 2):
        assert torch.isclose(y[state[:, d].argmin(), d], torch.tensor(-1.0), atol=1e-6)
        assert torch.isclose(y[state[:, d].argmax(), d], torch.tensor(1.0), atol=1e-6)
    assert torch.all(y[:, 1] == 0)
    back = norm.unnormalize("state", y)
    torch.testing.assert_close(back, torch.from_numpy(state), atol=1e-5, rtol=1e-6)
    assert torch.all(norm.unnormalize("state", torch.zeros(5, 3))[:, 1] == 42.0)
    # leading batch/time axes are fine
    assert norm.normalize("state", torch.zeros(4, 2, 3)).shape == (4, 2, 3)


def test_normalizer_fixed_range_for_uint8_images():
    img = np.random.default_rng(5).integers(0, 256, size=(6, 4, 4, 3), dtype=np.uint8)
    norm = MinMaxNormalizer.fit({"img": img}, fixed_ranges={"img": (0, 255)})
    y = norm.normalize("img", torch.tensor([0, 255, 51], dtype=torch.uint8).expand(4, 4, 3).clone())
    assert y.dtype == torch.float32
    assert y[0, 0, 0] == -1 and y[0, 0, 1] == 1 and torch.isclose(y[0, 0, 2], torch.tensor(-0.6))
    full = norm.normalize("img", torch.from_numpy(img))
    torch.testing.assert_close(norm.unnormalize("img", full), torch.from_numpy(img).float(), atol=1e-4, rtol=0)
    assert norm.state_dict()["min_img"].shape == ()


def test_normalizer_state_dict_round_trip_and_errors():
    rng = np.random.default_rng(6)
    data = {"state": rng.normal(size=(50, 5)), "action": rng.uniform(0, 512, size=(50, 2)),
            "img": rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)}
    norm = MinMaxNormalizer.fit(data, fixed_ranges={"img": (0, 255)})
    sd = norm.state_dict()
    assert set(sd) == {f"{s}_{k}" for s in ("min", "max", "shape") for k in data}  # statistics only, stored once
    rebuilt = MinMaxNormalizer.from_state_dict({k: v.clone() for k, v in sd.items()})
    assert sorted(rebuilt.keys) == sorted(data)
    for key in data:
        x = torch.as_tensor(data[key])
        assert torch.equal(norm.normalize(key, x), rebuilt.normalize(key, x))
        assert torch.equal(norm.unnormalize(key, x.float()), rebuilt.unnormalize(key, x.float()))
    # inside a larger state_dict, an empty normalizer loads the buffers it has never seen
    policy = torch.nn.Module()
    policy.normalizer = MinMaxNormalizer()
    policy.load_state_dict({f"normalizer.{k}": v for k, v in sd.items()})
    x = torch.as_tensor(data["action"])
    assert torch.equal(policy.normalizer.normalize("action", x), norm.normalize("action", x))
    prefixed = MinMaxNormalizer.from_state_dict({"other.w": torch.zeros(1), **{f"n.{k}": v for k, v in sd.items()}}, prefix="n.")
    assert sorted(prefixed.keys) == sorted(data)
    # .to() moves the derived scale/offset too
    moved = rebuilt.to(torch.float64)
    assert moved.normalize("state", torch.zeros(1, 5, dtype=torch.float64)).dtype == torch.float64

    with pytest.raises(KeyError, match=r"expected one of \['state', 'action', 'img'\], got 'velocity'"):
        norm.normalize("velocity", torch.zeros(5))
    with pytest.raises(ValueError, match=r"'state'.*expected trailing shape \(5,\), got shape \(2, 4\)"):
        norm.normalize("state", torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"'img'.*\(8, 8, 3\)"):
        norm.unnormalize("img", torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="fixed_ranges"):
        MinMaxNormalizer.fit({"img": data["img"]}, fixed_ranges={"img": (255, 0)})
    with pytest.raises(ValueError, match="NaN"):
        MinMaxNormalizer.fit({"state": np.array([[np.nan, 1.0]])})
    with pytest.raises(ValueError, match="min_<key>"):
        MinMaxNormalizer.from_state_dict({"weight": torch.zeros(1)})


def test_failed_final_rename_restores_previous_store(tmp_path, monkeypatch):
    target = tmp_path / "r.zarr"
    make_buffer().save(target)
    real_rename = os.rename

    def failing_rename(src, dst):
        if ".tmp-" in os.fspath(src):  # the moment the new store would be renamed in
            raise OSError("simulated crash during rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(OSError, match="simulated"):
        make_buffer((2, 2)).save(target, overwrite=True)
    np.testing.assert_array_equal(ReplayBuffer.open(target).episode_ends, [5, 8])
    assert sorted(os.listdir(tmp_path)) == ["r.zarr"]
