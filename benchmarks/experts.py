"""An env's scripted experts on seeded episodes: success per task and what a demonstration costs.

    python benchmarks/experts.py [--env metaworld] [--episodes 50] [--tasks reach-v3 push-v3 ...] [--seed 100000]
    python benchmarks/experts.py --env robosuite

Each task's expert runs ``--episodes`` episodes from the demonstration seeds (``--seed`` onwards: the
starts ``generate_demos`` uses) at the env's episode limit, through the library's env and expert
(``envs/<env>``). Reported per task: success rate (95% Wilson), the share that succeed within
``--within`` steps (200 for Meta-World: the evaluation length DP3 and MP1 use, and the suite's), mean
length of the successful episodes, env steps per second, and the seconds per episode. Prints a table
and writes docs/results/<env>_experts.json (``--out``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from shortcut_policy.envs import get_env_spec
from shortcut_policy.evaluation.stats import wilson_interval
from shortcut_policy.utils.device import cpu_model
from shortcut_policy.utils.io import write_json

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def run_task(env_name: str, task: str, episodes: int, seed: int, within: int) -> dict:
    spec = get_env_spec(env_name).configure(task)
    start = time.perf_counter()
    env = spec.make()
    expert = spec.make_expert(seed)
    make_s = time.perf_counter() - start
    lengths, successes, steps = [], [], 0
    start = time.perf_counter()
    for s in range(seed, seed + episodes):
        obs, _ = env.reset(seed=s)
        expert.reset(seed=s)
        length, success = 0, False
        while True:
            obs, _, terminated, truncated, info = env.step(expert.act(obs, env))
            length += 1
            success = success or spec.success(info)
            if terminated or truncated:
                break
        lengths.append(length)
        successes.append(success)
        steps += length
    seconds = time.perf_counter() - start
    env.close()
    n = int(sum(successes))
    low, high = wilson_interval(n, episodes)
    ok = [length for length, s in zip(lengths, successes) if s]
    return {"task": task, "episodes": episodes, "successes": n, "success_rate": n / episodes, "success_ci95": [low, high],
            f"success_within_{within}": sum(s and length <= within for length, s in zip(lengths, successes)) / episodes,
            "mean_success_length": float(np.mean(ok)) if ok else None, "max_success_length": max(ok) if ok else None,
            "env_steps_per_s": steps / seconds, "seconds_per_episode": seconds / episodes, "make_s": make_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="metaworld")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every task of the env")
    parser.add_argument("--seed", type=int, default=100_000, help="first demonstration seed")
    parser.add_argument("--within", type=int, default=200, help="also report the share that succeed within this many steps")
    parser.add_argument("--out", type=Path, default=None, help="default: docs/results/<env>_experts.json")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error("--episodes: expected >= 1")
    spec = get_env_spec(args.env)
    if spec.make_expert is None:
        parser.error(f"--env: the {args.env} env has no scripted expert")
    args.tasks = args.tasks or list(spec.tasks) or [None]
    args.out = args.out or RESULTS / f"{args.env}_experts.json"
    for task in args.tasks:
        spec.check_task(task)
    spec.check_installed()
    group_of = {t: g for g, members in spec.task_groups.items() for t in members}
    rows = [run_task(args.env, t, args.episodes, args.seed, args.within) | {"group": group_of.get(t, "other")}
            for t in tqdm(args.tasks, desc="expert episodes (tasks)")]
    print(f"\n| task | group | success (95% Wilson) | within {args.within} steps | mean length (successes) | env steps/s | s per episode |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in sorted(rows, key=lambda r: (list(spec.task_groups).index(r["group"]) if r["group"] in spec.task_groups else 99, r["task"])):
        low, high = r["success_ci95"]
        length = f"{r['mean_success_length']:.0f}" if r["mean_success_length"] else "-"
        print(f"| {r['task']} | {r['group']} | {r['success_rate']:.0%} [{low:.0%}, {high:.0%}] | {r[f'success_within_{args.within}']:.0%} | "
              f"{length} | {r['env_steps_per_s']:.0f} | {r['seconds_per_episode']:.3f} |")
    path = write_json(args.out, {"env": args.env, "rows": rows, "episodes": args.episodes, "first_seed": args.seed, "date": time.strftime("%Y-%m-%d"),
                                 "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch": torch.__version__}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
