"""act() latency at batch 1 on this machine, against one bare forward pass of the denoiser.

    python benchmarks/act_latency.py [--checkpoint outputs/.../policy.safetensors] [--calls 300]
    python benchmarks/act_latency.py --objective ddpm --steps 1 100 --out docs/results/act_latency_ddpm.json
    python benchmarks/act_latency.py --device cuda --objective ddpm --steps 1 100 --out ...   # on a GPU
    python benchmarks/act_latency.py --device cuda --cuda-graph off --out ...                 # the eager path there

Without a checkpoint it builds the default policy (env=push_t, policy=unet) with random weights:
latency does not depend on the weights. Reports, per step budget, the median and p95 of
  * a bare denoiser forward (prepared tensors, inference mode): the floor any policy pays per NFE;
  * act() calls that replan (validation, history, normalization, encoding, sampling, unnormalizing);
  * act() amortized over all calls (7 of 8 calls only pop the queue).
and the ratio replanning act(steps=1) / bare forward (target <= 1.15). Writes
docs/results/act_latency.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.config import load_config
from shortcut_policy.contract import PolicyContract
from shortcut_policy.data import MinMaxNormalizer
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import build_objective
from shortcut_policy.policy import Policy, load_policy
from shortcut_policy.utils.device import describe_device
from shortcut_policy.utils.io import write_json

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "act_latency.json"


def default_policy(objective_name: str = "shortcut", device: str = "cpu", cuda_graph: bool | None = None) -> Policy:
    config = load_config({"objective": {"name": objective_name}})
    objective = build_objective(config.objective)
    contract = PolicyContract(obs_features({"keypoint": (18,)}), "action", 2, config.policy, config.objective)
    network = build_network(config.policy, contract.obs, 2)
    rng = np.random.default_rng(0)
    normalizer = MinMaxNormalizer.fit({"keypoint": rng.uniform(0, 512, (64, 18)), "action": rng.uniform(0, 512, (64, 2))})
    return Policy(network, normalizer, objective, contract, device, cuda_graph)


def timed(fn, n: int, warmup: int = 20) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - start
    return out * 1e3  # ms


def interleaved(a, b, n: int, warmup: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Time ``a`` and ``b`` alternately, n times each (ms)."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = np.empty(n), np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        a()
        ta[i] = time.perf_counter() - start
        start = time.perf_counter()
        b()
        tb[i] = time.perf_counter() - start
    return ta * 1e3, tb * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="", help="policy.safetensors or run folder (default: random default policy)")
    parser.add_argument("--calls", type=int, default=300, help="timed calls per measurement")
    parser.add_argument("--objective", default="shortcut", help="objective of the random default policy (ignored with --checkpoint)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 128])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timings on cuda synchronize after each call)")
    parser.add_argument("--cuda-graph", choices=["auto", "on", "off"], default="auto",
                        help="replan through CUDA graphs (auto: on a CUDA device) or eagerly")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()

    device = torch.device(args.device)
    graph = {"auto": None, "on": True, "off": False}[args.cuda_graph]
    policy = (load_policy(args.checkpoint, args.device, cuda_graph=graph) if args.checkpoint
              else default_policy(args.objective, args.device, graph))
    rng = np.random.default_rng(0)
    frames = [{k: rng.uniform(100, 400, policy.obs_shapes[k]) for k in policy.obs_keys} for _ in range(64)]

    # the bare forward: prepared inputs, one denoiser call
    net = policy.network
    x = torch.randn(1, policy.horizon, policy.action_dim, device=device)
    t = torch.zeros(1, device=device)
    d = torch.zeros(1, device=device)
    with torch.inference_mode():
        cond = net.encode({k: torch.zeros(1, policy.n_obs_steps, *policy.obs_shapes[k], device=device) for k in policy.obs_keys})

    def bare():
        with torch.inference_mode():
            net(x, t, d, cond)
        if device.type == "cuda":
            torch.cuda.synchronize()  # act() returns numpy, so it waits for the GPU; the bare call must too

    counter = iter(range(10**9))

    def next_frame():
        return frames[next(counter) % len(frames)]

    forward = np.array([])
    rows = []
    for steps in args.steps:

        def replan():
            policy.reset()  # empty queue: this call runs the sampler
            policy.act(next_frame(), steps=steps)

        # interleave bare forwards and replanning calls so that drift in the machine's speed hits both alike
        n = max(20, args.calls // max(1, steps // 8))  # fewer calls at high step counts
        fwd_k, replans = interleaved(bare, replan, n)
        forward = np.concatenate([forward, fwd_k])
        policy.reset()
        amortized = timed(lambda: policy.act(next_frame(), steps=steps), n * policy.n_action_steps, warmup=policy.n_action_steps)
        rows.append(
            {
                "steps": steps,
                "forward_median_ms": float(np.median(fwd_k)),
                "replan_median_ms": float(np.median(replans)),
                "replan_p95_ms": float(np.percentile(replans, 95)),
                "act_median_ms": float(np.median(amortized)),
                "act_mean_ms": float(np.mean(amortized)),
                "act_p95_ms": float(np.percentile(amortized, 95)),
                "replan_over_forward": float(np.median(replans) / np.median(fwd_k)),
                "replan_over_steps_x_forward": float(np.median(replans) / (steps * np.median(fwd_k))),
            }
        )
    result = {
        "policy": args.checkpoint or f"default config, {args.objective}, random weights",
        "params_M": sum(p.numel() for p in net.parameters()) / 1e6,
        "device": describe_device(device),
        "cuda_graph": policy.cuda_graph,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "forward_median_ms": float(np.median(forward)),
        "forward_p95_ms": float(np.percentile(forward, 95)),
        "rows": rows,
    }
    print(f"denoiser forward at batch 1: median {result['forward_median_ms']:.3f} ms, p95 {result['forward_p95_ms']:.3f} ms "
          f"({result['params_M']:.2f}M params, {result['torch_threads']} threads)")
    print(f"{'steps':>5} | {'replan med':>10} | {'replan p95':>10} | {'act mean':>8} | {'replan/fwd':>10} | {'replan/(k*fwd)':>14}")
    for r in rows:
        print(f"{r['steps']:>5} | {r['replan_median_ms']:>8.3f}ms | {r['replan_p95_ms']:>8.3f}ms | {r['act_mean_ms']:>6.3f}ms | "
              f"{r['replan_over_forward']:>10.3f} | {r['replan_over_steps_x_forward']:>14.3f}")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
