"""Training throughput per objective on the same network: what the self-consistency targets cost.

    python benchmarks/train_throughput.py [--policy unet] [--batch-size 128 [256 ...]] [--sc-fraction 0.25]
                                          [--threads 1] [--steps 30] [--repeats 7] [--device cuda] [--bf16] [--compile]

Each objective runs the full training step (loss, backward, AdamW, EMA update) on the network of
one policy config (``configs/policy/<name>.yaml``) and one fixed batch. Within a round every
objective runs in turn, call by call, and the shortcut / flow-matching ratio is taken per round:
drift in the machine's speed, large on a shared machine, hits both sides of a pair alike. The median ratio and
its range over rounds are reported (target >= 0.85).

The shortcut's extra cost is also broken down, in the same rounds:
  * its self-consistency target on its own: two sequential no-grad half-step passes over the
    n_sc = sc_fraction * B rows it covers;
  * one no-grad forward over n_sc rows against one over the whole batch. The paper's "about 16%
    more compute" assumes the small pass costs its share of rows, n_sc / B; the measured share
    says how far this machine's kernels are from that at this batch size.
Writes docs/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from shortcut_policy.config import PolicyConfig, load_config
from shortcut_policy.features import obs_features
from shortcut_policy.models.network import build_network
from shortcut_policy.objectives import ShortcutConfig, build_objective
from shortcut_policy.training.ema import EMA
from shortcut_policy.utils.device import describe_device
from shortcut_policy.utils.io import write_json
from shortcut_policy.utils.paths import config_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "train_throughput.json"
OBJECTIVES = ["flow_matching", "shortcut", "meanflow", "ddpm"]
OBS_DIM = 18  # Push-T keypoints
ACTION_DIM = 2


def policy_config(name: str) -> PolicyConfig:
    """The policy as ``policy=<name>`` selects it for training, validated by the config schema."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        return load_config(compose("train", overrides=[f"policy={name}"])).policy


def make_batch(policy: PolicyConfig, batch_size: int, device: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    obs = {"keypoint": (torch.rand(batch_size, policy.n_obs_steps, OBS_DIM, generator=gen) * 2 - 1).to(device)}
    x1 = (torch.rand(batch_size, policy.horizon, ACTION_DIM, generator=gen) * 2 - 1).to(device)  # (B, H, A)
    return obs, x1


def make_workloads(
    policy: PolicyConfig, batch_size: int, device: str, sc_fraction: float, bf16: bool = False, compile_net: bool = False
) -> tuple[dict[str, Callable[[], None]], int, int]:
    """Training steps per objective, plus the shortcut breakdown; returns (workloads, n_sc, n_params)."""
    obs, x1 = make_batch(policy, batch_size, device)
    workloads: dict[str, Callable[[], None]] = {}
    nets, objectives = {}, {}
    options = {"shortcut": {"sc_fraction": sc_fraction}}
    for name in OBJECTIVES:
        objective = objectives[name] = build_objective({"name": name, **options.get(name, {})})
        torch.manual_seed(0)
        net = nets[name] = build_network(policy, obs_features({"keypoint": (OBS_DIM,)}), ACTION_DIM).to(device)
        ema = EMA(net)
        if compile_net:  # the denoiser, called once or more per step (MeanFlow's jvp of it falls back to eager)
            net.denoiser = torch.compile(net.denoiser)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def step(objective=objective, net=net, ema=ema, opt=opt, gen=gen) -> None:
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                loss, _ = objective.loss(net, x1, obs, target_net=ema.model, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ema.update(net)

        workloads[name] = step

    # the shortcut's extra work on its own, on the shortcut's network in training mode (as in its loss)
    objective_sc, net = objectives["shortcut"], nets["shortcut"]
    n_sc = objective_sc.split(batch_size)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        cond = net.encode(obs)  # (B, C)
    x0 = torch.randn(x1.shape, generator=gen).to(device)
    t = torch.rand(batch_size, generator=gen).to(device)
    d = torch.full((batch_size,), 1.0 / objective_sc.config.max_steps, device=device)

    def sc_target() -> None:
        with torch.no_grad():
            objective_sc.make_targets(x1, x0, net, cond, gen)

    def forward(rows: int) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                net(x0[:rows], t[:rows], d[:rows], cond[:rows])

        return run

    workloads["sc_target"] = sc_target
    workloads["forward_sc_rows"] = forward(n_sc)
    workloads["forward_batch"] = forward(batch_size)
    return workloads, n_sc, sum(p.numel() for p in net.parameters())


def measure(workloads: dict[str, Callable[[], None]], steps: int, repeats: int, device: str) -> dict[str, list[float]]:
    """ms per call of each workload in each round. Within a round the workloads take turns call by
    call (flow, shortcut, ddpm, ..., flow, shortcut, ...), so that a drift in the machine's speed, which
    on a shared machine moves within seconds, falls on every workload alike."""

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    times: dict[str, list[float]] = {name: [] for name in workloads}
    for _ in range(repeats):
        for work in workloads.values():
            for _ in range(5):
                work()  # warm-up
        total = dict.fromkeys(workloads, 0.0)
        for _ in range(steps):
            for name, work in workloads.items():
                sync()
                start = time.perf_counter()
                work()
                sync()
                total[name] += time.perf_counter() - start
        for name in workloads:
            times[name].append(1e3 * total[name] / steps)
    return times


def summarize(times: dict[str, list[float]], batch_size: int, n_sc: int) -> dict:
    per_round = np.array(times["flow_matching"]) / np.array(times["shortcut"])  # samples/s ratio, paired
    median = {name: float(np.median(t)) for name, t in times.items()}
    return {
        "batch_size": batch_size,
        "n_sc": n_sc,
        "objectives": {
            name: {"step_ms": median[name], "samples_per_s": batch_size / median[name] * 1e3, "rounds_ms": times[name]}
            for name in OBJECTIVES
        },
        "shortcut_over_flow_matching": float(np.median(per_round)),
        "meanflow_over_flow_matching": float(np.median(np.array(times["flow_matching"]) / np.array(times["meanflow"]))),
        "ratio_rounds": per_round.tolist(),
        "sc_target_ms": median["sc_target"],
        "sc_target_share_of_shortcut_step": median["sc_target"] / median["shortcut"],
        "forward_sc_rows_ms": median["forward_sc_rows"],
        "forward_batch_ms": median["forward_batch"],
        "sc_forward_cost_share": median["forward_sc_rows"] / median["forward_batch"],  # sc_row_share if linear in rows
        "sc_row_share": n_sc / batch_size,
    }


def main() -> None:
    policies = sorted(p.stem for p in (config_dir() / "policy").glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="unet", choices=policies, help="policy config, as policy=<name> in training")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[128])
    parser.add_argument("--sc-fraction", type=float, default=ShortcutConfig.sc_fraction,
                        help="share of each shortcut batch given to self-consistency rows (objective.sc_fraction)")
    parser.add_argument("--steps", type=int, default=30, help="timed calls per workload per round")
    parser.add_argument("--repeats", type=int, default=7, help="rounds")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's, all cores); 1 is what each run gets in compare jobs=<cores>")
    parser.add_argument("--bf16", action="store_true", help="the loss under bf16 autocast (weights and optimiser in fp32)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the denoiser")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    for field in ("steps", "repeats"):
        if getattr(args, field) < 1:
            parser.error(f"--{field}: expected an integer >= 1, got {getattr(args, field)}")
    if min(args.batch_size) < 2:
        parser.error(f"--batch-size: expected integers >= 2 (a batch holds flow and self-consistency rows), got {args.batch_size}")

    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads: expected an integer >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    try:
        ShortcutConfig(sc_fraction=args.sc_fraction)
    except ValueError as err:
        parser.error(f"--sc-fraction: {err}")
    if args.sc_fraction == 0:
        parser.error("--sc-fraction: expected a value in (0, 1): with no self-consistency rows there is no target to time")
    policy = policy_config(args.policy)
    batches = []
    n_params = 0
    for batch_size in args.batch_size:
        workloads, n_sc, n_params = make_workloads(policy, batch_size, args.device, args.sc_fraction, args.bf16, args.compile)
        print(f"batch {batch_size}: {args.repeats} rounds x {args.steps} calls of {len(workloads)} workloads ...", flush=True)
        batches.append(summarize(measure(workloads, args.steps, args.repeats, args.device), batch_size, n_sc))

    result = {
        "policy": args.policy,
        "backbone": policy.backbone,
        "sc_fraction": args.sc_fraction,
        "params_M": n_params / 1e6,
        "device": describe_device(args.device),
        "bf16_autocast": args.bf16,
        "compiled": args.compile,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "rounds": args.repeats,
        "steps_per_round": args.steps,
        "turns": "call by call",  # within a round; earlier results (no such key) ran 30 calls per objective in a block
        "batches": batches,
    }
    print(f"\npolicy={args.policy} ({policy.backbone}, {result['params_M']:.2f}M params), sc_fraction={args.sc_fraction}, {result['device']}, "
          f"{result['torch_threads']} threads, {args.repeats} rounds x {args.steps} steps")
    print(f"{'batch':>5} | {'samples/s: flow':>15} | {'shortcut':>8} | {'meanflow':>8} | {'ddpm':>6} | {'shortcut/flow (range)':>23} | "
          f"{'SC target':>16} | {'fwd(n_sc)/fwd(B)':>16}")
    for b in batches:
        o = b["objectives"]
        lo, hi = min(b["ratio_rounds"]), max(b["ratio_rounds"])
        print(f"{b['batch_size']:>5} | {o['flow_matching']['samples_per_s']:>15.0f} | {o['shortcut']['samples_per_s']:>8.0f} | "
              f"{o['meanflow']['samples_per_s']:>8.0f} | "
              f"{o['ddpm']['samples_per_s']:>6.0f} | {b['shortcut_over_flow_matching']:>7.3f} ({lo:.3f}-{hi:.3f}) | "
              f"{b['sc_target_ms']:>5.1f} ms ({b['sc_target_share_of_shortcut_step']:>4.0%} step) | "
              f"{b['sc_forward_cost_share']:>6.2f} (rows {b['sc_row_share']:.2f})")
    print("target: shortcut/flow >= 0.85")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
