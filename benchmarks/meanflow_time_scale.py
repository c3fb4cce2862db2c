"""Why t and d are embedded at scale 100: MeanFlow's squared error on a fixed batch after a short fit,
with the sinusoids of t and of d at several scales.

    python benchmarks/meanflow_time_scale.py [--steps 120]

MeanFlow's interval target holds the network's derivative along t and d (a Jacobian-vector product);
the sinusoids multiply that derivative by their scale. Each row fits the same 16-chunk batch with the
same noise, times and initial weights (the small U-Net of the tests), and reports the squared error
of the d = 0 rows (flow matching's) and of the interval rows (d > 0) before and after.
"""

from __future__ import annotations

import argparse
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from shortcut_policy.config import load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.utils.io import write_json

SCALES = [(1000.0, 1000.0), (1000.0, 100.0), (100.0, 1000.0), (100.0, 100.0), (10.0, 10.0), (1.0, 1.0)]


def fit(time_scale: float, step_scale: float, steps: int) -> dict:
    torch.manual_seed(0)
    policy = load_config({"policy": {"horizon": 8, "n_action_steps": 4, "unet": {"down_dims": [16, 32], "embed_dim": 16}}}).policy
    net = build_network(policy, obs_features({"k": (4,)}), 2)
    net.denoiser.condition.time.net[0].scale = time_scale  # the SinusoidalEmbedding of each embedder
    net.denoiser.condition.step.net[0].scale = step_scale
    objective = build_objective({"name": "meanflow"})
    x1, obs = torch.rand(16, 8, 2) * 2 - 1, {"k": torch.randn(16, 2, 4)}
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def metrics() -> dict:
        return objective.loss(net, x1, obs, generator=torch.Generator().manual_seed(0))[1]

    before = metrics()
    for _ in range(steps):
        loss, _ = objective.loss(net, x1, obs, generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = metrics()
    return {"time_scale": time_scale, "step_scale": step_scale, "before": before, "after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--output", type=Path, default=Path("docs/results/meanflow_time_scale.json"))
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps: expected >= 1, got {args.steps}")
    rows = [fit(t, d, args.steps) for t, d in SCALES]
    print(f"| t scale | d scale | error before: d = 0 / interval | after {args.steps} steps: d = 0 / interval |")
    print("|---:|---:|---|---|")
    for r in rows:
        b, a = r["before"], r["after"]
        print(f"| {r['time_scale']:g} | {r['step_scale']:g} | {b['loss_flow']:.3f} / {b['loss_interval']:.3f} | "
              f"{a['loss_flow']:.3f} / {a['loss_interval']:.3f} |")
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "steps": args.steps}
    print(f"wrote {write_json(args.output, {'meta': meta, 'rows': rows})}")


if __name__ == "__main__":
    main()
