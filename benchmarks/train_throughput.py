"""Training throughput per objective on the same network: what the self-consistency targets cost.

    python benchmarks/train_throughput.py [--backbone unet] [--batch-size 128] [--steps 40] [--repeats 3] [--device cuda]

Each objective runs the full training step (loss, backward, AdamW, EMA update) on the default
Push-T network and batch; objectives are interleaved over ``--repeats`` rounds so drift of the
machine's speed hits them alike. Prints samples/s and the shortcut / flow-matching ratio (target
>= 0.85); writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.config import load_config
from shortcut_policy.ema import EMA
from shortcut_policy.io import write_json
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"
OBJECTIVES = ["flow_matching", "shortcut", "ddpm"]


def make_step(name: str, backbone: str, batch_size: int, device: str = "cpu"):
    config = load_config({"policy": {"backbone": backbone}})
    objective = build_objective({"name": name})
    torch.manual_seed(0)
    net = build_network(config.policy, {"keypoint": (18,)}, 2, objective.n_levels).to(device)
    ema = EMA(net)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    obs = {"keypoint": (torch.rand(batch_size, config.policy.n_obs_steps, 18) * 2 - 1).to(device)}
    x1 = (torch.rand(batch_size, config.policy.horizon, 2) * 2 - 1).to(device)
    gen = torch.Generator().manual_seed(0)

    def step():
        loss, _ = objective.loss(net, x1, obs, target_net=ema.model, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(net)

    return step, sum(p.numel() for p in net.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="unet", choices=["unet", "transformer"])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=40, help="timed steps per objective per round")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    def sync() -> None:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    steps = {name: make_step(name, args.backbone, args.batch_size, args.device) for name in OBJECTIVES}
    times: dict[str, list[float]] = {name: [] for name in OBJECTIVES}
    for _ in range(args.repeats):
        for name, (step, _) in steps.items():
            for _ in range(5):
                step()  # warm-up
            sync()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync()
            times[name].append((time.perf_counter() - start) / args.steps)
    rows = {
        name: {"step_ms": 1e3 * float(np.median(t)), "samples_per_s": args.batch_size / float(np.median(t)), "rounds_ms": [1e3 * x for x in t]}
        for name, t in times.items()
    }
    ratio = rows["shortcut"]["samples_per_s"] / rows["flow_matching"]["samples_per_s"]
    result = {
        "backbone": args.backbone,
        "params_M": steps["shortcut"][1] / 1e6,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "device": args.device if not args.device.startswith("cuda") else f"{args.device} ({torch.cuda.get_device_name()})",
        "rows": rows,
        "shortcut_over_flow_matching": ratio,
    }
    print(f"{args.backbone}, batch {args.batch_size}, {result['params_M']:.2f}M params, {result['device']}, {torch.get_num_threads()} threads")
    print(f"{'objective':>14} | {'step (ms)':>9} | {'samples/s':>9}")
    for name, r in rows.items():
        print(f"{name:>14} | {r['step_ms']:>9.1f} | {r['samples_per_s']:>9.0f}")
    print(f"shortcut / flow_matching throughput: {ratio:.3f}")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
