"""Measure the scripted Push-T expert: success rate, episode length, coverage and speed.

    python benchmarks/push_t_expert.py --episodes 100 --seed-start 0

Runs one episode per env seed (seed_start .. seed_start + episodes - 1; the expert is reseeded with
the same seed), prints a table and writes JSON to docs/results/push_t_expert.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
import gymnasium as gym
import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from shortcut_policy.envs.push_t.expert import PushTExpert  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parents[1] / "docs" / "results" / "push_t_expert.json"
MAX_EPISODE_STEPS = 300  # gym-pusht's episode cap
WILSON_Z = 1.959964  # 95% two-sided normal quantile


def wilson_interval(successes: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """95% Wilson score interval for a binomial proportion (well behaved near 0 and 1)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def run_episode(env: gym.Env, expert: PushTExpert, seed: int) -> dict:
    """One episode; returns success, length, final coverage and max coverage."""
    env.reset(seed=seed)
    expert.reset(seed=seed)
    coverage, max_coverage, success, steps = 0.0, 0.0, False, 0
    for steps in range(1, MAX_EPISODE_STEPS + 1):
        _, _, terminated, truncated, info = env.step(expert.act(None, env))
        coverage = float(info["coverage"])
        max_coverage = max(max_coverage, coverage)
        success = bool(info["is_success"])
        if terminated or truncated:
            break
    return {"seed": seed, "success": success, "length": steps, "coverage": coverage, "max_coverage": max_coverage}


def write_json_atomic(path: Path, payload: dict) -> None:
    """Write to a temporary file in the same folder, then rename (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100, help="number of episodes (env seeds)")
    parser.add_argument("--seed-start", type=int, default=0, help="first env seed")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="JSON output path")
    args = parser.parse_args(argv)

    env = gym.make("gym_pusht/PushT-v0", obs_type="state")
    expert = PushTExpert()
    episodes = []
    start = time.perf_counter()
    for seed in tqdm(range(args.seed_start, args.seed_start + args.episodes), desc="push-t expert"):
        episodes.append(run_episode(env, expert, seed))
    total_s = time.perf_counter() - start
    env.close()

    n = len(episodes)
    successes = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(successes, n)
    summary = {
        "episodes": n,
        "seed_start": args.seed_start,
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "success_rate_wilson95": [lo, hi],
        "mean_length": float(np.mean([e["length"] for e in episodes])) if n else 0.0,
        "mean_length_successful": float(np.mean([e["length"] for e in episodes if e["success"]]))
        if successes
        else None,
        "mean_final_coverage": float(np.mean([e["coverage"] for e in episodes])) if n else 0.0,
        "seconds_per_episode": total_s / n if n else 0.0,
        "total_seconds": total_s,
        "failed_seeds": [e["seed"] for e in episodes if not e["success"]],
        "machine": {"python": platform.python_version(), "processor": platform.processor(), "cpus": os.cpu_count()},
    }
    rows = [
        ("episodes (seeds)", f"{n} ({args.seed_start}..{args.seed_start + n - 1})"),
        ("success rate", f"{summary['success_rate']:.3f}  (95% Wilson {lo:.3f}-{hi:.3f})"),
        ("mean episode length", f"{summary['mean_length']:.1f} steps"),
        ("mean final coverage", f"{summary['mean_final_coverage']:.3f}"),
        ("seconds per episode", f"{summary['seconds_per_episode']:.3f}"),
        ("total seconds", f"{total_s:.1f}"),
        ("failed seeds", str(summary["failed_seeds"])),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    write_json_atomic(args.output, {"summary": summary, "episodes": episodes})
    print(f"wrote {args.output}")
    return summary


if __name__ == "__main__":
    main()
