"""No silent wrong results, no lost runs: one test (or a few) per class of defect.

Run-folder ownership, store provenance, resume config, non-finite values, action size, one-episode
stores, one-line errors, checking before working, hostile stores, temp-file cleanup.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import torch
import zarr
from hydra import compose, initialize_config_dir

from shortcut_policy import load_policy
from shortcut_policy.checkpoint import POLICY_FILE, load_tensors, save_tensors
from shortcut_policy.config import CompareConfig, load_config
from shortcut_policy.data import DatasetError, ReplayBuffer
from shortcut_policy.data.demos import ensure_dataset, generate_demos
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.training.resume import RESUMES_FILE, config_for_resume
from shortcut_policy.training.run_folder import RunFolder, RunFolderBusy
from shortcut_policy.training.trainer import run
from shortcut_policy.utils.io import atomic_write, this_host, write_json
from shortcut_policy.utils.paths import config_dir

TINY = {"policy": {"unet": {"down_dims": [16, 32], "embed_dim": 16}}}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demos") / "push_t.zarr"
    generate_demos("push_t", episodes=2, seed=100_000, out=path, progress=False)
    return path


def tiny(store: Path, run_dir: Path, **train) -> dict:
    return {
        **TINY,
        "env": {"dataset": str(store)},
        "train": {"num_steps": 20, "batch_size": 16, "warmup_steps": 5, "log_every": 10, "val_every": 10,
                  "checkpoint_every": 10, "eval_episodes": 0, **train},
        "run_dir": str(run_dir),
    }


def command(*overrides: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shortcut_policy.train", *overrides], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


def train_overrides(store: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"env.dataset={store}", f"run_dir={run_dir}", "policy.unet.down_dims=[16,32]", "policy.unet.embed_dim=16",
            "train.num_steps=20", "train.batch_size=16", "train.warmup_steps=5", "train.log_every=10",
            "train.val_every=10", "train.checkpoint_every=10", "train.eval_episodes=0",
            f"hydra.run.dir={run_dir.parent / 'hydra'}", "hydra.output_subdir=null", *extra]


# ------------------------------------------------------------------------- run-folder ownership
def test_a_run_folder_has_one_live_owner_and_a_crash_leaves_no_lock(tmp_path):
    with RunFolder(tmp_path / "run"):
        with pytest.raises(RunFolderBusy, match=rf"run_dir: {tmp_path / 'run'} is in use by another training \(pid {os.getpid()}\)"):
            with RunFolder(tmp_path / "run"):
                pass
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from shortcut_policy.training.run_folder import RunFolder\n"
        f"f = RunFolder({str(tmp_path / 'other')!r}).__enter__(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunFolderBusy):
        RunFolder(tmp_path / "other").__enter__()
    holder.kill()  # kill -9: nothing runs on the way out
    holder.wait()
    with RunFolder(tmp_path / "other"):  # the operating system dropped the dead process's lock
        pass


def test_a_refusal_before_any_write_leaves_no_folder(tmp_path, store):
    config = load_config(tiny(store, tmp_path / "run", eval_steps=[2000], eval_episodes=1))  # above any sampler's bound
    with pytest.raises(ValueError, match="train.eval_steps"):
        run(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_finished_run_is_not_overwritten_unless_asked(tmp_path, store):
    run(load_config(tiny(store, tmp_path / "run")), tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(FileExistsError, match=r"already holds a run \(config.json, train_state.safetensors, metrics.jsonl, "
                                              r"policy.safetensors\); "
                                              r"train.resume=true continues it, train.overwrite=true replaces it"):
        run(load_config(tiny(store, tmp_path / "run", seed=1)), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    run(load_config(tiny(store, tmp_path / "run", seed=1, overwrite=True)), tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() != before


@pytest.mark.slow
def test_two_trainings_started_at_once_in_one_folder(tmp_path, store):
    """One refuses with a clear error, the other completes; nothing of either is lost."""
    run_dir = tmp_path / "run"
    args = [sys.executable, "-m", "shortcut_policy.train", *train_overrides(store, run_dir, "train.num_steps=60")]
    first, second = (subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
                      for _ in range(2))
    results = [(p.wait(timeout=300), p.stderr.read()) for p in (first, second)]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refusal = next(err for code, err in results if code == 1).strip().splitlines()
    assert len(refusal) == 1 and refusal[0].startswith(f"error: run_dir: {run_dir}"), refusal
    assert "is in use by another training" in refusal[0] or "already holds a run" in refusal[0]
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [10, 20, 30, 40, 50, 60]
    assert load_policy(run_dir).meta["step"] == 60


# ------------------------------------------------------------------------------ store provenance
def test_a_cached_expert_store_must_be_the_one_asked_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path / "datasets"))
    small = load_config({"env": {"demo_episodes": 1}}).env
    path = ensure_dataset(small, progress=False)
    assert ReplayBuffer.open(path).attrs["seed"] == 100_000
    asked = load_config({"env": {"demo_episodes": 2}}).env
    with pytest.raises(ValueError, match=r"env.demo_episodes/env.demo_seed/env.demo_noise/env.max_episode_steps/env.expert_options/env.options: "
                                         r".*push_t_expert.zarr holds 1 expert episodes of push_t from seed 100000 cut at 300 "
                                         r"steps, the config asks for 2 successful ones of push_t from seed 100000 cut at 300"):
        ensure_dataset(asked, progress=False)
    with pytest.raises(ValueError, match=r"holds 1 expert episodes of push_t from seed 100000 cut at 300 steps, the config "
                                         r"asks for 1 successful ones of push_t from seed 200000 cut"):
        ensure_dataset(load_config({"env": {"demo_episodes": 1, "demo_seed": 200_000}}).env, progress=False)
    with pytest.raises(ValueError, match=r"the config asks for 1 successful ones of push_t from seed 100000 with action "
                                         r"noise 0.1 cut at 300 steps"):
        ensure_dataset(load_config({"env": {"demo_episodes": 1, "demo_noise": 0.1}}).env, progress=False)
    with pytest.raises(ValueError, match=r"from seed 100000 cut at 300 steps, the config asks for 1 successful ones of "
                                         r"push_t from seed 100000 cut at 250 steps"):
        ensure_dataset(load_config({"env": {"demo_episodes": 1, "max_episode_steps": 250}}).env, progress=False)
    assert ReplayBuffer.open(path).n_episodes == 1  # untouched
    regenerate = load_config({"env": {"demo_episodes": 2, "regenerate_demos": True}}).env
    assert ReplayBuffer.open(ensure_dataset(regenerate, progress=False)).n_episodes == 2


def test_demonstration_seeds_never_overlap_test_seeds():
    with pytest.raises(ValueError, match=r"env.demo_seed: the expert's demonstrations may use seeds 7..9, the test "
                                         r"episodes \(train.eval_episodes\) use 0..49"):
        load_config({"env": {"demo_episodes": 1, "demo_seed": 7}})
    with pytest.raises(ValueError, match=r"env.demo_seed: .* seeds 100000..100029, the test episodes \(seed_start, episodes\) "
                                         r"use 99990..100039"):
        load_config({"env": {"demo_episodes": 10}, "seed_start": 99_990, "episodes": 50}, CompareConfig)
    load_config({"env": {"demo_episodes": 1, "demo_seed": 50}})  # next to the test seeds is fine
    load_config({"env": {"demo_seed": 7, "dataset": "user.zarr"}})  # a store the user names makes no demonstrations


def test_a_store_the_user_names_must_exist(tmp_path):
    missing = tmp_path / "typo.zarr"
    with pytest.raises(FileNotFoundError, match="env.dataset: no store at .*typo.zarr .*never generated"):
        ensure_dataset(load_config({"env": {"dataset": str(missing)}}).env, progress=False)
    assert not missing.exists()


# ------------------------------------------------------------------------------- resume config
def resume_config(run_dir: Path, *overrides: str):
    given = ["train.resume=true", f"run_dir={run_dir}", *overrides]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        composed = compose("train", overrides=given)
    return config_for_resume(run_dir, composed, given)


def test_resume_reads_the_run_config_and_refuses_changes_to_what_was_trained(tmp_path, store):
    run_dir = tmp_path / "run"
    run(load_config(tiny(store, run_dir, lr=1e-3)), run_dir, progress=False)
    config = resume_config(run_dir)  # the documented command alone: the saved data, network and budget
    assert config.env.dataset == str(store) and config.train.lr == 1e-3 and config.policy.unet.down_dims == [16, 32]
    with pytest.raises(ValueError, match=r"train.resume: .* was trained with other values of train.batch_size \(saved 16, "
                                         r"asked 32\); train.lr \(saved 0.001, asked 0.1\)"):
        run(resume_config(run_dir, "train.lr=0.1", "train.batch_size=32"), run_dir, progress=False)
    with pytest.raises(ValueError, match=r"other values of env.dataset"):
        run(resume_config(run_dir, "env.dataset=elsewhere.zarr"), run_dir, progress=False)
    longer = resume_config(run_dir, "train.num_steps=30")
    run(longer, run_dir, progress=False)
    assert load_policy(run_dir).meta["step"] == 30
    assert json.loads((run_dir / RESUMES_FILE).read_text())["changed"] == {"train.num_steps": [20, 30]}
    assert json.loads((run_dir / "config.json").read_text())["train"]["num_steps"] == 30


def test_resume_without_a_run_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.resume: no config.json in run_dir"):
        resume_config(tmp_path / "nothing")


# ------------------------------------------------------------------------------ non-finite values
def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, store):
    run_dir = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=r"train: non-finite .* at step \d+; training stopped and "
                                                 r"(the checkpoints of step \d+ .* are kept|no checkpoint was written)"):
        run(load_config(tiny(store, run_dir, lr=1e9, num_steps=200, checkpoint_every=2, log_every=1)), run_dir, progress=False)
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():  # strict JSON: NaN is not a JSON number
        json.loads(line, parse_constant=lambda name: pytest.fail(f"non-finite {name} in metrics.jsonl"))
    if (run_dir / POLICY_FILE).exists():
        tensors, _ = load_tensors(run_dir / POLICY_FILE)
        assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())
        load_policy(run_dir)


def test_act_never_returns_a_non_finite_action(tmp_path, store):
    run(load_config(tiny(store, tmp_path / "run")), tmp_path / "run", progress=False)
    policy = load_policy(tmp_path / "run")
    obs = {"keypoint": np.full(18, 1e30)}  # finite, far outside the training data
    with pytest.raises(FloatingPointError, match=r"action: the policy computed NaN or inf actions for batch rows \[0\]"):
        policy.act(obs)
    policy.reset()
    grad = torch.full((18,), 250.0, requires_grad=True)  # a tensor from an autograd graph is read, not refused
    assert np.isfinite(policy.act({"keypoint": grad})).all()


def test_a_checkpoint_with_non_finite_or_edited_contents_is_refused(tmp_path, store):
    run(load_config(tiny(store, tmp_path / "run")), tmp_path / "run", progress=False)
    file = tmp_path / "run" / POLICY_FILE
    tensors, meta = load_tensors(file)
    nan_norm = {k: (torch.full_like(v, float("nan")) if k.startswith("normalizer.") and v.is_floating_point() else v)
                for k, v in tensors.items()}
    save_tensors(tmp_path / "nan.safetensors", nan_norm, meta)
    with pytest.raises(ValueError, match=r"nan.safetensors: non-finite values \(NaN or inf\) in normalizer\."):
        load_policy(tmp_path / "nan.safetensors")
    edited = json.loads(json.dumps(meta))
    edited["contract"]["policy"]["unet"]["down_dims"] = [32, 64]
    save_tensors(tmp_path / "edited.safetensors", tensors, edited)
    with pytest.raises(ValueError, match=r"edited.safetensors: its contract and weights do not fit together \(.*size mismatch"):
        load_policy(tmp_path / "edited.safetensors")
    del edited["contract"]["policy"]
    save_tensors(tmp_path / "broken.safetensors", tensors, edited)
    with pytest.raises(ValueError, match=r"broken.safetensors: its contract cannot be read \(contract: expected the fields "
                                         r"obs, action, policy and objective, got no \['policy'\]\)"):
        load_policy(tmp_path / "broken.safetensors")
    edited = json.loads(json.dumps(meta))
    edited["contract"]["policy"]["nonsense"] = 1
    save_tensors(tmp_path / "unknown.safetensors", tensors, edited)
    with pytest.raises(ValueError, match=r"unknown.safetensors: its contract cannot be read \(.*nonsense"):
        load_policy(tmp_path / "unknown.safetensors")


def test_non_finite_config_values_are_refused():
    for override, message in [({"lr": float("nan")}, r"train.lr: expected > 0, got nan"),
                              ({"weight_decay": float("nan")}, r"train.weight_decay: expected >= 0, got nan"),
                              ({"ema_power": float("inf")}, r"train.ema_power: expected > 0, got inf")]:
        with pytest.raises(ValueError, match=message):
            load_config({"train": override})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_named(tmp_path, store):
    with pytest.raises(ValueError, match=r"train.device: 'cuda' asked, but this torch finds no CUDA GPU"):
        run(load_config(tiny(store, tmp_path / "run", device="cuda")), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------- action size
def test_actions_must_be_steps_by_dims_and_fit_the_env(tmp_path, store):
    buffer = ReplayBuffer.open(store)
    flat = ReplayBuffer({**buffer.data, "action": buffer.data["action"][:, 0].copy()}, buffer.episode_ends)
    flat.save(tmp_path / "flat.zarr")
    with pytest.raises(ValueError, match=r"data/action: expected \(steps, action_dim\) actions, got shape \(\d+,\)"):
        run(load_config(tiny(store, tmp_path / "run") | {"env": {"dataset": str(tmp_path / "flat.zarr")}}),
            tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    narrow = ReplayBuffer({**buffer.data, "action": buffer.data["action"][:, :1].copy()}, buffer.episode_ends)
    narrow.save(tmp_path / "narrow.zarr")
    with pytest.raises(ValueError, match=r"action: the policy acts in 1 dimensions .* the push_t env takes 2"):
        run(load_config(tiny(store, tmp_path / "run2", eval_episodes=1) | {"env": {"dataset": str(tmp_path / "narrow.zarr")}}),
            tmp_path / "run2", progress=False)
    run(load_config(tiny(store, tmp_path / "run3") | {"env": {"dataset": str(tmp_path / "narrow.zarr")}}),
        tmp_path / "run3", progress=False)  # trains without rolling out
    with pytest.raises(ValueError, match="the policy acts in 1 dimensions"):
        rollout(load_policy(tmp_path / "run3"), "push_t", seeds=[0], steps=1, progress=False)


# ----------------------------------------------------------------------------- one-episode store
def test_a_store_with_one_episode_warns_that_nothing_validates(tmp_path, store, capsys):
    buffer = ReplayBuffer.open(store)
    one = ReplayBuffer({k: v.copy() for k, v in buffer.get_episode(0).items()}, buffer.episode_ends[:1])
    one.save(tmp_path / "one.zarr")
    run(load_config(tiny(store, tmp_path / "run") | {"env": {"dataset": str(tmp_path / "one.zarr")}}), tmp_path / "run",
        progress=False)
    assert "holds 1 episode(s): none is held out (train.val_ratio=0.02), so no validation loss is logged" in capsys.readouterr().out


# -------------------------------------------------------------------------------- one-line errors
@pytest.mark.slow
def test_a_config_error_is_one_line_naming_the_key(tmp_path, store):
    result = command(*train_overrides(store, tmp_path / "run", "train.lr=0"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: train.lr: expected > 0, got 0.0"]
    result = command(*train_overrides(store, tmp_path / "run", "train.lr=abc"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: train.lr: ")
    full = command(*train_overrides(store, tmp_path / "run", "train.lr=0"), env={"HYDRA_FULL_ERROR": "1"})
    assert full.returncode == 1 and "Traceback" in full.stderr
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- check before work
def test_unencodable_images_and_unwritable_folders_are_refused_before_any_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path / "datasets"))
    started = time.perf_counter()
    config = load_config({"env": {"obs_keys": ["img"]}, "policy": {"vision": {"crop_ratio": 0.05}}, "run_dir": str(tmp_path / "run")})
    with pytest.raises(ValueError, match=r"obs_keys: 'img' is 96x96, cropped to 5x5 \(policy.vision.crop_ratio=0.05\); policy.vision.encoder='small' makes a 1x1 map"):
        run(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "datasets").exists() and not (tmp_path / "run").exists()
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("SHORTCUT_POLICY_DATA", str(tmp_path / "file"))
    with pytest.raises(PermissionError, match=r"env.dataset: cannot write a demonstration store in .*file"):
        ensure_dataset(load_config({}).env, progress=False)
    assert time.perf_counter() - started < 30  # no expert episode was run


# -------------------------------------------------------------------------------- hostile stores
class Payload:
    """What a hostile store would hold: unpickling it runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@pytest.mark.parametrize("how", ["object array", "pickle compressor", "structured fill value"])
def test_a_hostile_store_is_refused_from_its_metadata(tmp_path, store, monkeypatch, how):
    path = tmp_path / "hostile.zarr"
    ReplayBuffer.open(store).save(path)
    marker = tmp_path / "ran"
    n = ReplayBuffer.open(store).n_steps
    data = zarr.open_group(str(path), mode="a")["data"]
    if how == "object array":
        arr = data.create("evil", shape=(n,), dtype=object, object_codec=numcodecs.Pickle())
        arr[:] = np.array([Payload(str(marker))] * n, dtype=object)
    elif how == "pickle compressor":
        arr = data.create("evil", shape=(n,), dtype="f4", compressor=numcodecs.Pickle())
        arr[:] = np.zeros(n, np.float32)
    else:  # zarr unpickles a structured dtype's fill value when it opens the array, before any chunk is read
        meta = json.loads((path / "data" / "keypoint" / ".zarray").read_text())
        payload = base64.standard_b64encode(pickle.dumps(Payload(str(marker)))).decode()
        meta.update(dtype=[["a", "<f4"], ["b", "|O"]], shape=[n], chunks=[n], fill_value=payload,
                    filters=[{"id": "pickle", "protocol": 5}])
        (path / "data" / "evil").mkdir()
        (path / "data" / "evil" / ".zarray").write_text(json.dumps(meta))
    decoded = []
    monkeypatch.setattr(numcodecs.Pickle, "decode", lambda self, buf, out=None: decoded.append(buf))
    with pytest.raises(DatasetError, match=r"data/evil: expected (a numeric dtype|numeric codecs) in the store .*hostile.zarr"):
        ReplayBuffer.open(path)
    assert not decoded and not marker.exists()


# ------------------------------------------------------------------------------ temp-file cleanup
def test_temp_files_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    target = tmp_path / "train_state.safetensors"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)  # that process has ended
    host = this_host()
    stale = tmp_path / f".{target.name}.tmp-{host}-{dead_pid}-abc.safetensors"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".{target.name}.tmp-{host}-{os.getpid()}-def.safetensors"  # a write in progress here
    live.write_bytes(b"y")
    elsewhere = tmp_path / f".{target.name}.tmp-otherhost-{dead_pid}-jkl.safetensors"  # a machine sharing the folder
    elsewhere.write_bytes(b"w")
    other = tmp_path / f".other.json.tmp-{host}-{dead_pid}-ghi.json"
    other.write_text("{}")
    write_json(target, {"a": 1})
    assert not stale.exists() and live.exists() and elsewhere.exists() and other.exists()
    store_target = tmp_path / "demos.zarr"
    stale_store = tmp_path / f".demos.zarr.tmp-{host}-{dead_pid}-0123"
    stale_store.mkdir()
    (stale_store / "chunk").write_bytes(b"z" * 1000)
    ReplayBuffer({"a": np.zeros((2, 1), np.float32)}, np.array([2])).save(store_target)
    assert not stale_store.exists() and store_target.exists()
    atomic_write(tmp_path / "plain.txt", lambda tmp: Path(tmp).write_text("ok"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted([live.name, elsewhere.name, other.name])


@pytest.mark.slow
def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path, store):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    run(load_config(tiny(store, straight)), straight, progress=False)
    run(load_config(tiny(store, killed)), killed, progress=False)
    for name in ("train_state.safetensors", "policy.safetensors", "metrics.jsonl"):  # as if killed before step 10
        (killed / name).unlink()
    run(resume_config(killed, "hydra/job_logging=disabled", "~train.log_every"), killed, progress=False)
    a, _ = load_tensors(straight / POLICY_FILE)
    b, _ = load_tensors(killed / POLICY_FILE)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_an_image_run_resumes_with_its_own_config(tmp_path):
    from shortcut_policy.config import ImageRunConfig
    from shortcut_policy.image.trainer import run_image
    from shortcut_policy.training.resume import command_config

    small = {"model": {"hidden": 32, "depth": 2, "heads": 2},
             "train": {"num_steps": 6, "batch_size": 32, "warmup_steps": 2, "log_every": 3, "val_every": 3, "checkpoint_every": 3},
             "eval": {"steps": [1], "samples_per_class": 4, "grid_per_class": 2, "classifier_epochs": 1}}
    run_dir = tmp_path / "run"
    run_image(load_config(small, ImageRunConfig), run_dir, progress=False)
    given = ["train.resume=true", f"run_dir={run_dir}", "train.num_steps=9", "eval.samples_per_class=2"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        composed = compose("train_image", overrides=given)
    config = command_config(composed, given, ImageRunConfig)
    assert config.model.hidden == 32 and config.train.num_steps == 9 and config.eval.samples_per_class == 2
    run_image(config, run_dir, progress=False)
    assert json.loads((run_dir / RESUMES_FILE).read_text())["changed"] == {
        "eval.samples_per_class": [4, 2], "train.num_steps": [6, 9]}
    with pytest.raises(ValueError, match=r"other values of model.hidden \(saved 32, asked 64\)"):
        given = ["train.resume=true", f"run_dir={run_dir}", "model.hidden=64"]
        with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
            composed = compose("train_image", overrides=given)
        run_image(command_config(composed, given, ImageRunConfig), run_dir, progress=False)
