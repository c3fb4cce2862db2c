"""Data-parallel training under torchrun on the CPU (gloo): two ranks of batch B/2 step as one process of
batch B; a 2-rank training run writes one checkpoint that load_policy acts with; killed, it resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from shortcut_policy import load_policy
from shortcut_policy.checkpoint import load_meta
from shortcut_policy.data.demos import generate_demos
from shortcut_policy.training import distributed

HERE = Path(__file__).resolve().parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]


def command(args: list[str], timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)


@pytest.mark.slow
def test_two_ranks_of_half_the_batch_take_one_process_step(tmp_path):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    for args, out in (([sys.executable], one), (TORCHRUN, two)):
        result = command([*args, str(HERE / "ddp_step.py"), str(out)])
        assert result.returncode == 0, result.stderr[-3000:]
    a, b = torch.load(one), torch.load(two)
    assert a.keys() == b.keys() and any(k.startswith("grad.encoder.images.cam") for k in a)
    for key in a:  # float tolerance, relative to each tensor's largest value
        scale = float(a[key].abs().max()) or 1.0
        assert torch.allclose(a[key], b[key], rtol=0, atol=1e-4 * scale), key


def test_rank_shards_cover_the_windows_once():
    shards = [distributed.shard(10, distributed.Ranks(rank, 3)) for rank in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(10))
    assert distributed.shard(10, distributed.Ranks()).tolist() == list(range(10))
    with pytest.raises(ValueError, match=r"torchrun: 4 ranks need at least as many training windows, the store has 3"):
        distributed.shard(3, distributed.Ranks(0, 4))


def test_the_image_trainer_refuses_torchrun(monkeypatch, tmp_path):
    from shortcut_policy.config import ImageRunConfig
    from shortcut_policy.image.trainer import run_image

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match=r"torchrun: the image \(DiT\) trainer trains in one process, got WORLD_SIZE=2"):
        run_image(ImageRunConfig(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("bad, match", [({"WORLD_SIZE": "two"}, r"WORLD_SIZE: expected an integer \(torchrun sets it\), got 'two'"),
                                        ({"RANK": "2", "WORLD_SIZE": "2"}, r"expected 0 <= RANK < WORLD_SIZE")])
def test_bad_rank_variables_are_refused(monkeypatch, bad, match):
    for name, value in bad.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        distributed.ranks_from_env()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return generate_demos("push_t", episodes=2, seed=100_000, out=tmp_path_factory.mktemp("ddp") / "demos.zarr", progress=False)


def train_args(store: Path, run_dir: Path, steps: int, *extra: str) -> list[str]:
    return [*TORCHRUN, "-m", "shortcut_policy.train", f"env.dataset={store}", f"run_dir={run_dir}",
            "policy.unet.down_dims=[16,32]", f"train.num_steps={steps}", "train.batch_size=8", "train.warmup_steps=2",
            "train.log_every=5", "train.val_every=10", "train.checkpoint_every=10", "train.eval_episodes=0", *extra]


def logged_steps(run_dir: Path) -> list[int]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_a_two_rank_run_writes_one_checkpoint_that_acts(tmp_path):
    """Rank 0 makes the demonstrations while the other waits, then both train from them."""
    run_dir = tmp_path / "run"
    args = [a for a in train_args(Path("unused"), run_dir, 20) if not a.startswith("env.dataset=")]
    result = command([*args, "env.demo_episodes=2"], env={"SHORTCUT_POLICY_DATA": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("generating 2 expert episodes") == 1 and (tmp_path / "data" / "push_t_expert.zarr").is_dir()
    assert result.stdout.count("using demonstrations at") == 1  # the other rank found rank 0's
    assert "rank 0 of 2 (batch 8 per rank)" in result.stdout
    assert logged_steps(run_dir) == [5, 10, 15, 20]  # one writer
    assert sorted(p.name for p in run_dir.iterdir() if not p.name.startswith(".")) == [
        "config.json", "metrics.jsonl", "policy.safetensors", "train_state.safetensors"]
    policy = load_policy(run_dir)  # no "module." prefixes: the checkpoint is a one-process one
    action = policy.act(np.zeros(18))
    assert action.shape == (2,) and np.isfinite(action).all()


def descendants(pid: int) -> list[int]:
    """The processes below ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@pytest.mark.slow
def test_a_killed_two_rank_run_resumes_under_torchrun(store, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(train_args(store, run_dir, 100_000), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               cwd=HERE.parent, env=env)
    deadline = time.monotonic() + 240
    try:
        while not (run_dir / "train_state.safetensors").exists() or max(logged_steps(run_dir), default=0) < 15:
            assert process.poll() is None and time.monotonic() < deadline, "the run ended or stalled before its first checkpoint"
            time.sleep(0.5)
    finally:  # torchrun and both ranks (torchrun starts each in a session of its own), at once
        for pid in [process.pid, *descendants(process.pid)]:
            os.kill(pid, signal.SIGKILL)
        process.wait()
    saved = load_meta(run_dir / "train_state.safetensors")["step"]
    end = saved + 20
    result = command([*TORCHRUN, "-m", "shortcut_policy.train", "train.resume=true", f"run_dir={run_dir}", f"train.num_steps={end}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resumed from {run_dir / 'train_state.safetensors'} at step {saved}" in result.stdout
    steps = logged_steps(run_dir)
    assert steps[-1] == end and steps == sorted(set(steps))  # continued, without a step logged twice
    assert load_policy(run_dir).meta["step"] == end


@pytest.mark.slow
def test_a_two_job_sweep_runs_through_the_submitit_local_launcher(store, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")  # the cluster extra (in the test extra)
    sweep = tmp_path / "sweep"
    args = [a for a in train_args(store, tmp_path / "unused", 10) if not a.startswith("run_dir=")]
    result = command([sys.executable, "-m", "shortcut_policy.train", "-m", "hydra/launcher=submitit_local",
                      f"hydra.sweep.dir={sweep}", "train.seed=0,1", *args[len(TORCHRUN) + 2:]])
    assert result.returncode == 0, result.stderr[-3000:]
    for job, seed in (("0", 0), ("1", 1)):
        assert json.loads((sweep / job / "config.json").read_text())["train"]["seed"] == seed
        assert load_policy(sweep / job).meta["step"] == 10
    assert not (tmp_path / "unused").exists()
