"""What makes the default training faster on this machine: threads, batch size, width and torch.compile.

    python benchmarks/train_speed_options.py [--objective meanflow shortcut] [--steps 20] [--repeats 3]

The default command's budget is a number of optimiser steps, so its training time is steps x the time
of one step. Each variant below runs the full training step (loss, backward, AdamW, EMA update) of
one objective on one fixed batch, and the variants take turns round by round, so drift in the
machine's speed falls on all of them:
  * threads: torch's CPU threads, 2 (all cores, the default) and 1;
  * batch: 32, 64 (the default) and 128: samples/s rises with the batch, steps/s falls;
  * width: policy=unet (the default) and policy=unet_wide;
  * target pass (MeanFlow): ``objective.target_pass=difference``, du/dt by a central difference (two
    plain forwards) instead of forward mode, at batch 64 and 128;
  * compile: ``torch.compile`` of the denoiser (inductor, the default mode), with dynamo's caches
    reset first; the first calls compile, and that time is reported apart from the step time. Where
    dynamo gives up and runs eagerly (MeanFlow's ``torch.func.jvp`` of a compiled module is not
    supported), the row says so; a variant that fails outright is reported with its error.
Quality at another batch or width is a training question; this script times steps only.
Writes docs/results/train_speed_options.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch._dynamo
from hydra import compose, initialize_config_dir
from torch._dynamo.utils import counters

from shortcut_policy.config import PolicyConfig, TrainConfig, load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.training.ema import EMA
from shortcut_policy.utils.device import describe_device
from shortcut_policy.utils.io import write_json
from shortcut_policy.utils.paths import config_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "train_speed_options.json"
OBS_DIM, ACTION_DIM = 18, 2  # Push-T keypoints, planar action
NUM_STEPS = TrainConfig().num_steps  # the default command's budget
BATCH = TrainConfig().batch_size  # and its batch


@dataclass(frozen=True)
class Variant:
    name: str
    policy: str = "unet"
    batch_size: int = BATCH
    threads: int = 2
    compile: bool = False
    target_pass: str | None = None  # MeanFlow's objective.target_pass (other objectives skip the variant)


VARIANTS = [
    Variant(f"default (unet, batch {BATCH}, 2 threads)"),
    Variant("1 thread", threads=1),
    Variant("batch 32", batch_size=32),
    Variant("batch 128", batch_size=128),
    Variant("policy=unet_wide", policy="unet_wide"),
    Variant("torch.compile", compile=True),
    Variant("target_pass=difference", target_pass="difference"),
    Variant("batch 128, target_pass=difference", batch_size=128, target_pass="difference"),
]


def policy_config(name: str) -> PolicyConfig:
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return load_config(compose("train", overrides=[f"policy={name}"])).policy


def make_step(objective_name: str, variant: Variant) -> tuple[Callable[[], None], int]:
    """One training step of ``objective_name`` under ``variant``; returns (step, parameters)."""
    policy = policy_config(variant.policy)
    gen = torch.Generator().manual_seed(0)
    obs = {"keypoint": torch.rand(variant.batch_size, policy.n_obs_steps, OBS_DIM, generator=gen) * 2 - 1}
    x1 = torch.rand(variant.batch_size, policy.horizon, ACTION_DIM, generator=gen) * 2 - 1  # (B, H, A)
    torch.manual_seed(0)
    net = build_network(policy, obs_features({"keypoint": (OBS_DIM,)}), ACTION_DIM)
    ema = EMA(net)
    model = torch.compile(net) if variant.compile else net  # encode() reaches the module itself; forward is compiled
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    objective = build_objective({"name": objective_name, **({"target_pass": variant.target_pass} if variant.target_pass else {})})

    def step() -> None:
        loss, _ = objective.loss(model, x1, obs, target_net=ema.model, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net)

    return step, sum(p.numel() for p in net.parameters())


def measure(objective_name: str, steps: int, repeats: int) -> list[dict]:
    rows, works = [], []
    for variant in VARIANTS:
        if variant.target_pass and objective_name != "meanflow":
            continue
        torch.set_num_threads(variant.threads)
        row = {"variant": variant.name, **variant.__dict__}
        if variant.compile:
            torch._dynamo.reset()  # nothing compiled (or refused) for an earlier objective carries over
            counters.clear()
        try:
            step, n_params = make_step(objective_name, variant)
            start = time.perf_counter()
            for _ in range(3):  # warm-up; compiles on the first call
                step()
            row.update(params_M=n_params / 1e6, warmup_s=time.perf_counter() - start, rounds_ms=[])
            if variant.compile and counters["unimplemented"]:
                row["eager_fallback"] = next(iter(counters["unimplemented"])).splitlines()[0]
            works.append((variant, step, row))
        except Exception as err:  # reported in the table: a variant that cannot run is a finding
            row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        rows.append(row)
    for _ in range(repeats):
        for variant, step, row in works:
            torch.set_num_threads(variant.threads)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            row["rounds_ms"].append(1e3 * (time.perf_counter() - start) / steps)
    for _, _, row in works:
        ms = float(np.median(row["rounds_ms"]))
        if not np.isfinite(ms):
            raise RuntimeError(f"{row['variant']}: non-finite step time {ms}")
        row.update(step_ms=ms, steps_per_s=1e3 / ms, samples_per_s=row["batch_size"] * 1e3 / ms)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objective", nargs="+", default=["meanflow", "shortcut"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    parser.add_argument("--repeats", type=int, default=3, help="rounds")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    for field in ("steps", "repeats"):
        if getattr(args, field) < 1:
            parser.error(f"--{field}: expected an integer >= 1, got {getattr(args, field)}")
    for name in args.objective:
        try:
            build_objective({"name": name})
        except (ValueError, KeyError) as err:
            parser.error(f"--objective: {err}")

    result = {"num_steps": NUM_STEPS, "device": describe_device("cpu"), "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(),
              "cores": torch.get_num_threads(), "steps_per_round": args.steps, "rounds": args.repeats, "objectives": {}}
    for name in args.objective:
        print(f"{name}: {len(VARIANTS)} variants x {args.repeats} rounds x {args.steps} steps ...", flush=True)
        rows = result["objectives"][name] = measure(name, args.steps, args.repeats)
        base = rows[0].get("step_ms")
        print(f"{'variant':<38} | {'params':>7} | {'step ms':>8} | {'samples/s':>9} | {f'time for {NUM_STEPS:,} steps':>20} | {'warm-up s':>9}")
        for row in rows:
            if "error" in row:
                print(f"{row['variant']:<38} | failed: {row['error']}")
                continue
            rel = f" ({row['step_ms'] / base:.2f}x)" if base else ""
            print(f"{row['variant']:<38} | {row['params_M']:>6.2f}M | {row['step_ms']:>8.1f} | {row['samples_per_s']:>9.0f} | "
                  f"{NUM_STEPS * row['step_ms'] / 6e4:>9.1f} min{rel:>8} | {row['warmup_s']:>9.1f}"
                  + (f"  (runs eagerly: {row['eager_fallback']})" if "eager_fallback" in row else ""))
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
