"""A policy rolled out at several step budgets on fixed test seeds: one row per budget.

For each step budget: the score (mean over episodes of the env's episode score; for Push-T the max
coverage reward, Diffusion Policy's metric), the success rate with a 95% Wilson interval, the mean episode length,
the jerk of the executed actions (``smoothness.py``), and ``act()``
latency at batch 1 (median / p95 per call, and per replanning call). ``report.py``
writes the rows as ``eval.json``, ``eval.md`` and ``eval.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np

from ..envs import EnvSpec
from .rollout import EpisodeResult, measure_act_latency, rollout, save_video
from .smoothness import action_jerk, mean_jerk
from .stats import wilson_interval


def outcomes(results: Sequence[EpisodeResult], rollout_seconds: float) -> dict:
    """What a row says of its episodes: score, success with its Wilson interval, length, jerk, each episode."""
    n_success = sum(r.success for r in results)
    low, high = wilson_interval(n_success, len(results))
    jerks = [action_jerk(r.actions) if r.actions else None for r in results]
    return {
        "episodes": len(results),
        "score": float(np.mean([r.score for r in results])),
        "success_rate": n_success / len(results),
        "success_ci95": [low, high],
        "mean_length": float(np.mean([r.length for r in results])),
        "jerk": mean_jerk(jerks),  # action units; None when no episode has 3 actions
        "rollout_seconds": rollout_seconds,
        "per_episode": [{"seed": r.seed, "score": r.score, "success": r.success, "length": r.length, "jerk": j}
                        for r, j in zip(results, jerks)],
    }


def evaluate_policy(
    policy,
    env: str | EnvSpec,
    steps_list: Sequence[int],
    episodes: int = 50,
    seed_start: int = 0,
    latency_calls: int = 200,
    n_videos: int = 0,
    video_dir: str | Path | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> list[dict]:
    """One row per step budget of ``env`` (a configured spec, or a name); test seeds are ``seed_start .. seed_start + episodes - 1``; ``workers``:
    processes the episodes' environments are stepped in (None: the env's default)."""
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    for steps in steps_list:
        policy.objective.validate_steps(steps)
    seeds = list(range(seed_start, seed_start + episodes))
    rows = []
    for steps in steps_list:
        start = time.perf_counter()
        results = rollout(policy, env, seeds, steps, n_videos=n_videos if video_dir else 0, progress=progress,
                          workers=workers)
        rollout_s = time.perf_counter() - start
        row = {"steps": steps, **outcomes(results, rollout_s)}
        if latency_calls:
            row.update(measure_act_latency(policy, env, steps, n_calls=latency_calls, seed=seed_start))
        if video_dir:
            for r in results[:n_videos]:
                save_video(Path(video_dir) / f"steps{steps:03d}_seed{r.seed}.mp4", r.frames)
        rows.append(row)
        if progress:
            print(format_row(row))
    return rows


def evaluate_deadlines(
    policy,
    env: str | EnvSpec,
    deadlines_ms: Sequence[float],
    episodes: int = 50,
    seed_start: int = 0,
    progress: bool = True,
    workers: int | None = None,
) -> list[dict]:
    """One row per deadline: the policy picks each replan's step budget (``act(deadline_ms=...)``) from
    replanning times measured afresh on this machine, one robot at a time (batch 1). The row says which
    budgets were picked (how many replans each) and their replanning time (p95, ms), beside the score,
    success and jerk."""
    from ..deadline import check_deadline

    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    deadlines = [check_deadline(d) for d in deadlines_ms]
    seeds = list(range(seed_start, seed_start + episodes))
    rows = []
    for deadline in deadlines:
        policy.budget.forget()  # measured afresh for each deadline, as a robot measures at start-up
        start = time.perf_counter()
        results = rollout(policy, env, seeds, None, progress=progress, workers=workers, deadline_ms=deadline)
        rollout_s = time.perf_counter() - start
        chosen = dict(sorted(policy.budget.chosen.items()))
        row = {
            "deadline_ms": deadline,
            "steps_chosen": {str(k): v for k, v in chosen.items()},  # budget -> replanning calls that used it
            "steps": max(chosen, key=lambda k: (chosen[k], k)),  # the budget used most
            "replan_p95_ms": {str(k): policy.budget.p95(k, 1) for k in chosen},  # recent p95 of each budget used
            **outcomes(results, rollout_s),
        }
        rows.append(row)
        if progress:
            print(format_row(row, head=f"deadline={deadline:g}ms  chose {row['steps_chosen']}"))
    return rows


def format_row(row: dict, head: str | None = None) -> str:
    """One evaluation row as a line; ``head`` replaces the leading ``steps=k``."""
    low, high = row["success_ci95"]
    head = f"steps={row['steps']:>3}" if head is None else head
    text = (
        f"{head}  score={row['score']:.3f}  success={row['success_rate']:.0%} "
        f"[{low:.0%}, {high:.0%}]  len={row['mean_length']:.0f}"
    )
    if row.get("jerk") is not None:
        text += f"  jerk={row['jerk']:.2f}"
    if "act_median_ms" in row:
        text += f"  act={row['act_median_ms']:.2f}/{row['act_p95_ms']:.2f}ms  replan={row['replan_median_ms']:.2f}/{row['replan_p95_ms']:.2f}ms"
    return text
