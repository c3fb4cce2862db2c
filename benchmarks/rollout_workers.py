"""Rollout wall time: episodes' environments stepped in this process vs in worker processes.

    python benchmarks/rollout_workers.py --checkpoint outputs/push_t/<run> [--episodes 50] [--steps 1 16] \\
        [--workers 0 2] [--repeats 2] [--max-episode-steps N] [--out F]

Each (step budget, workers) pair rolls out the same test seeds with the same policy, taking turns
round by round so that a slow moment of the machine falls on every setting alike; the median wall
time of the repeats is reported. The episodes must come out the same whatever the number of workers:
same lengths and successes, scores equal to 1e-9 (checked; the largest difference is reported). Prints a table and
writes docs/results/rollout_workers.json (``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.evaluate import trained_env
from shortcut_policy.evaluation.rollout import rollout
from shortcut_policy.objectives import check_steps
from shortcut_policy.policy import load_policy
from shortcut_policy.utils.device import cpu_model
from shortcut_policy.utils.io import write_json

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "rollout_workers.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="policy.safetensors or run folder")
    parser.add_argument("--episodes", type=int, default=50, help="test seeds 0 .. episodes - 1")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="0: in this process")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-episode-steps", type=int, default=None, help="episode length (default: the run's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.episodes < 1 or args.repeats < 1 or any(w < 0 for w in args.workers):
        parser.error("--episodes and --repeats: expected >= 1; --workers: expected >= 0")
    policy = load_policy(args.checkpoint)
    check_steps("--steps", args.steps, policy.objective)
    env_config = trained_env(args.checkpoint, policy)
    if args.max_episode_steps is not None:
        env_config = dataclasses.replace(env_config, max_episode_steps=args.max_episode_steps)
    env = env_config.spec()
    env_name = env.id
    seeds = list(range(args.episodes))
    times: dict[tuple[int, int], list[float]] = {(s, w): [] for s in args.steps for w in args.workers}
    outcomes: dict[tuple[int, int], list] = {}
    for round_ in range(args.repeats):
        for steps in args.steps:
            for workers in args.workers:
                start = time.perf_counter()
                results = rollout(policy, env, seeds, steps, progress=False, workers=workers)
                times[steps, workers].append(time.perf_counter() - start)
                outcomes.setdefault((steps, workers), [(r.seed, r.score, r.success, r.length) for r in results])
                print(f"round {round_ + 1}/{args.repeats}  steps={steps:>3}  workers={workers}  "
                      f"{times[steps, workers][-1]:.1f} s", flush=True)
    max_score_diff = 0.0  # the simulator's float noise: repeated rollouts in one process differ in the last bit
    for steps in args.steps:
        first = outcomes[steps, args.workers[0]]
        for workers in args.workers[1:]:
            other = outcomes[steps, workers]
            same = [(a[0], a[2], a[3]) == (b[0], b[2], b[3]) for a, b in zip(first, other)]
            diff = max(abs(a[1] - b[1]) for a, b in zip(first, other))
            max_score_diff = max(max_score_diff, diff)
            if not all(same) or diff > 1e-9:
                raise SystemExit(f"steps={steps}: the episodes differ between workers={args.workers[0]} and workers={workers}")
    rows = []
    for steps in args.steps:
        for workers in args.workers:
            t = np.array(times[steps, workers])
            scores = [o[1] for o in outcomes[steps, workers]]
            env_steps = sum(o[3] for o in outcomes[steps, workers])
            rows.append({"steps": steps, "workers": workers, "median_s": float(np.median(t)), "runs_s": t.tolist(),
                         "score": float(np.mean(scores)), "env_steps": env_steps,
                         "env_steps_per_s": env_steps / float(np.median(t))})
    print(f"\n{env_name}, {args.episodes} episodes, {args.checkpoint}")
    print(f"{'steps':>5} | {'workers':>7} | {'median wall (s)':>15} | {'runs (s)':>20} | score | env steps/s")
    for r in rows:
        runs = ", ".join(f"{x:.1f}" for x in r["runs_s"])
        print(f"{r['steps']:>5} | {r['workers']:>7} | {r['median_s']:>15.1f} | {runs:>20} | {r['score']:.3f} | {r['env_steps_per_s']:.0f}")
    path = write_json(args.out, {
        "env": env_name, "episodes": args.episodes, "checkpoint": str(args.checkpoint), "rows": rows,
        "max_score_difference_between_worker_counts": max_score_diff,
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d"),
    })
    print(f"episodes identical across worker counts (largest score difference {max_score_diff:.1e})\nwrote {path}")


if __name__ == "__main__":
    main()
