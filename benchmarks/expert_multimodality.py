"""How multimodal an expert's demonstrations are: from the same state, how far apart its next action
chunks lie over its own random choices; with its success rate, for each set of expert options.

    python benchmarks/expert_multimodality.py                       # Push-T: default vs multimodal expert
    python benchmarks/expert_multimodality.py --episodes 20 --branches 8

For each option set: ``--episodes`` seeded expert episodes (success, length); from each, the state
every ``--every`` steps; from each state, ``--branches`` fresh experts (their own random seeds) each act
``--horizon`` steps. The spread of those chunks (RMS distance from their mean, in the action's units:
Push-T pixels) is ``evaluation.multimodality.spread``, the measure docs/results/multimodality.md
applies to policies' samples.
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from shortcut_policy.envs import get_env_spec
from shortcut_policy.evaluation.multimodality import spread
from shortcut_policy.evaluation.stats import wilson_interval
from shortcut_policy.utils.io import write_json

MULTIMODAL = {"near_equal_ratio": 0.5, "route_tie_ratio": 3.0, "preferred_side_prob": 0.5}  # configs/env/push_t_multimodal.yaml
WIDE = 20.0  # a state "branches" when its chunks spread by more than this (pixels)


def measure(options: dict, args: argparse.Namespace) -> dict:
    spec = get_env_spec("push_t").configure(expert_options=options)
    env = spec.make(obs_keys=["state"])
    successes, lengths, states = [], [], []
    start = time.perf_counter()
    for i in tqdm(range(args.episodes), desc=f"episodes {options or 'default'}", unit="ep"):
        seed = args.seed + i
        expert = spec.make_expert(seed)
        obs, _ = env.reset(seed=seed)
        expert.reset(seed=seed)
        for step in range(spec.max_episode_steps):
            if step % args.every == 0:
                states.append(np.array(obs["state"], dtype=np.float64))
            obs, _, terminated, truncated, info = env.step(expert.act(obs, env))
            if terminated or truncated:
                break
        successes.append(spec.success(info))
        lengths.append(step + 1)
    episode_seconds = time.perf_counter() - start
    chunks = np.zeros((len(states), args.branches, args.horizon, spec.action_dim))
    for s, state in enumerate(tqdm(states, desc="branches", unit="state")):
        for k in range(args.branches):
            expert = spec.make_expert(k)
            expert.reset(seed=10_000 + k)  # its own choices: side preference, ties between contacts and routes
            obs, _ = env.reset(seed=0, options={"reset_to_state": state})
            for h in range(args.horizon):
                chunks[s, k, h] = expert.act(obs, env)
                obs, *_ = env.step(chunks[s, k, h])
    env.close()
    per_state = spread(chunks)
    low, high = wilson_interval(int(sum(successes)), len(successes))
    return {
        "expert_options": options, "episodes": len(successes), "success_rate": float(np.mean(successes)),
        "success_wilson95": [low, high], "mean_length": float(np.mean(lengths)), "episode_seconds": episode_seconds,
        "states": len(states), "spread_median": float(np.median(per_state)), "spread_mean": float(per_state.mean()),
        "spread_p90": float(np.quantile(per_state, 0.9)), "share_wide": float((per_state > WIDE).mean()),
        "spread_per_state": per_state.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=300_000, help="first episode seed (apart from demos and tests)")
    parser.add_argument("--every", type=int, default=30, help="take the state every this many steps")
    parser.add_argument("--branches", type=int, default=8, help="experts acting from each state")
    parser.add_argument("--horizon", type=int, default=16, help="actions per chunk (the policies' horizon)")
    parser.add_argument("--output", type=Path, default=Path("docs/results/push_t_expert_multimodality.json"))
    args = parser.parse_args()
    for name in ("episodes", "every", "branches", "horizon"):
        if getattr(args, name) < 1 or (name == "branches" and args.branches < 2):
            parser.error(f"--{name}: expected >= {2 if name == 'branches' else 1}, got {getattr(args, name)}")
    rows = {"default": measure({}, args), "multimodal": measure(MULTIMODAL, args)}
    print(f"\n| expert | success (95% Wilson) | mean length | states | spread median / mean / p90 (px) | share > {WIDE:.0f} px |")
    print("|---|---|---:|---:|---|---:|")
    for name, r in rows.items():
        low, high = r["success_wilson95"]
        print(f"| {name} | {r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | {r['mean_length']:.0f} | {r['states']} | "
              f"{r['spread_median']:.1f} / {r['spread_mean']:.1f} / {r['spread_p90']:.1f} | {r['share_wide']:.0%} |")
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.processor() or platform.machine(),
            "args": {k: str(v) for k, v in vars(args).items()}}
    print(f"wrote {write_json(args.output, {'meta': meta, 'rows': rows})}")


if __name__ == "__main__":
    main()
