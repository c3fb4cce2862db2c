"""Where a training step's time goes, and how far it is from what these cores can do.

    python benchmarks/train_step_profile.py [--batch 64 128] [--target-pass jvp difference] [--repeats 5] \\
        [--out docs/results/train_step_profile.json]

For the default U-Net and objective (MeanFlow) on Push-T-shaped data (one fixed batch), the phases of one training step, each
timed on its own over the same inputs: the target pass (MeanFlow: forward-mode JVP over the interval
rows, or with ``target_pass=difference`` two plain forwards), the forward with a graph over the whole
batch, its backward, and AdamW with the EMA update; beside them, the whole step as training runs it.
Then the step's floating-point work (``torch.utils.flop_counter``: matrix products and convolutions,
forward and backward, the target pass included) against the machine's measured peak, the FLOP/s of a
large float32 matrix product on the same threads. Phases and variants take turns round by round, so
drift in the machine's speed falls on all of them; the median round is reported.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from shortcut_policy.config import PolicyConfig
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.objectives.base import broadcast_to
from shortcut_policy.training.ema import EMA
from shortcut_policy.utils.device import cpu_model
from shortcut_policy.utils.io import write_json

OBS_DIM, ACTION_DIM = 18, 2  # Push-T keypoints, planar action
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "train_step_profile.json"


def peak_flops(threads: int, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n x n float32 matrix product on ``threads`` threads: the most this machine does."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / float(np.median(times))


def phases(batch: int, target_pass: str) -> tuple[dict[str, Callable[[], None]], Callable[[], None]]:
    """Each phase of one training step as a callable over fixed inputs, and the whole step."""
    policy = PolicyConfig()
    gen = torch.Generator().manual_seed(0)
    obs = {"keypoint": torch.rand(batch, policy.n_obs_steps, OBS_DIM, generator=gen) * 2 - 1}
    x1 = torch.rand(batch, policy.horizon, ACTION_DIM, generator=gen) * 2 - 1  # (B, H, A)
    torch.manual_seed(0)
    net = build_network(policy, obs_features({"keypoint": (OBS_DIM,)}), ACTION_DIM)
    ema = EMA(net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    objective = build_objective({"name": "meanflow", "target_pass": target_pass})

    x0 = torch.randn(x1.shape, generator=gen)
    t, d = objective.sample_times(batch, gen)
    x_t = (1 - broadcast_to(t, x1)) * x0 + broadcast_to(t, x1) * x1
    v = x1 - x0
    n = objective.split(batch)  # the interval rows, the only ones with a target pass
    state = {}

    def target() -> None:
        with torch.no_grad():
            cond = net.encode(obs)
        objective.interval_target(net, x_t[:n], t[:n], d[:n], v[:n], cond[:n])

    def forward() -> None:
        net.train()
        u = objective.velocity(net)(x_t, t, d, net.encode(obs))
        state["loss"] = (u - v).pow(2).mean()

    def backward() -> None:
        forward_loss = state.pop("loss")
        opt.zero_grad(set_to_none=True)
        forward_loss.backward()

    def update() -> None:
        opt.step()
        ema.update(net)

    def step() -> None:
        loss, _ = objective.loss(net, x1, obs, target_net=ema.model, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net)

    forward()  # so that backward has a graph on its first timed call
    return {"target pass": target, "forward (graph)": forward, "backward": backward, "AdamW + EMA": update}, step


def step_flops(step: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--target-pass", nargs="+", default=["jvp", "difference"], choices=["jvp", "difference"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="calls per phase per round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    for field in ("steps", "repeats", "threads"):
        if getattr(args, field) < 1:
            parser.error(f"--{field.replace('_', '-')}: expected an integer >= 1, got {getattr(args, field)}")
    if any(b < 2 for b in args.batch):
        parser.error(f"--batch: expected batch sizes >= 2, got {args.batch}")

    peak = peak_flops(args.threads)
    torch.set_num_threads(args.threads)
    variants = []
    for batch in args.batch:
        for target_pass in args.target_pass:
            named, step = phases(batch, target_pass)
            for _ in range(2):  # warm-up
                step()
            variants.append({"batch": batch, "target_pass": target_pass, "named": {**named, "whole step": step},
                             "flops": step_flops(step), "rounds_ms": {k: [] for k in [*named, "whole step"]}})
    for _ in range(args.repeats):
        for variant in variants:
            for name, call in variant["named"].items():
                spent = 0.0  # one mean per round for every phase
                for _ in range(args.steps):
                    if name == "backward":
                        variant["named"]["forward (graph)"]()  # not timed: backward needs a fresh graph
                    start = time.perf_counter()
                    call()
                    spent += time.perf_counter() - start
                variant["rounds_ms"][name].append(1e3 * spent / args.steps)

    rows = []
    print(f"meanflow, {args.threads} threads, {cpu_model()}; peak float32 matmul {peak / 1e9:.0f} GFLOP/s")
    print(f"{'batch':>5} | {'target':>10} | " + " | ".join(f"{k:>15}" for k in variants[0]["rounds_ms"])
          + " | samples/s | GFLOP per step | share of peak")
    for variant in variants:
        ms = {k: float(np.median(v)) for k, v in variant["rounds_ms"].items()}
        for k, value in ms.items():
            if not np.isfinite(value):
                raise RuntimeError(f"batch {variant['batch']}: non-finite time for {k}: {value}")
        whole = ms["whole step"]
        achieved = variant["flops"] / (whole / 1e3)
        row = {"batch": variant["batch"], "target_pass": variant["target_pass"], "phase_ms": ms,
               "samples_per_s": variant["batch"] * 1e3 / whole, "flops_per_step": variant["flops"],
               "achieved_flops": achieved, "share_of_peak": achieved / peak}
        rows.append(row)
        print(f"{variant['batch']:>5} | {str(variant['target_pass']):>10} | " + " | ".join(f"{ms[k]:>12.1f} ms" for k in ms)
              + f" | {row['samples_per_s']:>9.0f} | {variant['flops'] / 1e9:>14.2f} | {row['share_of_peak']:>12.1%}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    result = {"objective": "meanflow", "threads": args.threads, "cpu": cpu_model(), "torch": torch.__version__,
              "peak_flops": peak, "steps_per_round": args.steps, "rounds": args.repeats, "rows": rows,
              "date": datetime.date.today().isoformat(), "commit": commit}
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
