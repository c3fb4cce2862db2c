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
import torch

from ..envs import EnvSpec, resolve_env
from .clock import ClockedControl, ControlClock
from .rollout import EpisodeResult, measure_act_latency, rollout, save_video
from .smoothness import chunk_jerk, mean_jerk
from .stats import wilson_interval


def action_scale(policy) -> np.ndarray:
    """(A,) what one action unit is in the policy's normalized [-1, 1] units, per dimension (the
    normalization is affine: a second difference scales by this alone)."""
    key, n = policy.contract.action_key, policy.contract.action_dim
    with torch.no_grad():
        one = policy.normalizer.normalize(key, torch.ones(n, device=policy.device))
        zero = policy.normalizer.normalize(key, torch.zeros(n, device=policy.device))
    return (one - zero).cpu().double().numpy()


def demonstration_smoothness(policy, store: str | Path | None = None) -> dict | None:
    """The same smoothness figures for the demonstrations the policy learned from, the reference for its own:
    each episode's actions cut where the policy's chunks would start (every ``n_action_steps`` ticks), so the
    boundary figure shows what a cut alone gives. ``store``: the demonstrations (default: the dataset the
    checkpoint names). None when there is no store to read."""
    from ..data.replay_buffer import ReplayBuffer

    path = store or policy.meta.get("dataset")
    if not path or not Path(path).exists():
        return None
    key = policy.contract.action_key
    scale, period = action_scale(policy), policy.n_action_steps
    parts, normalized = [], []
    try:  # a reference, not the result: a store that cannot give it is said, and the evaluation goes on
        buffer = ReplayBuffer.open(path, keys=[key])
        for i in range(buffer.n_episodes):
            actions = buffer.get_episode(i)[key]
            if actions.ndim != 2 or actions.shape[1] != policy.action_dim:
                raise ValueError(f"its {key!r} is {actions.shape}, the policy acts in {policy.action_dim} dimensions")
            starts = list(range(0, len(actions), period))
            parts.append(chunk_jerk(actions, starts))
            normalized.append(chunk_jerk(actions, starts, scale)["jerk"])
    except (OSError, ValueError, KeyError) as err:
        print(f"warning: no demonstrations' smoothness from {path}: {err}")
        return None
    boundary, interior = mean_jerk([p["boundary"] for p in parts]), mean_jerk([p["interior"] for p in parts])
    return {"store": str(path), "episodes": buffer.n_episodes, "period": period,
            "jerk": mean_jerk([p["jerk"] for p in parts]), "jerk_normalized": mean_jerk(normalized),
            "boundary_jerk": boundary, "interior_jerk": interior,
            "boundary_minus_interior": None if boundary is None or interior is None else boundary - interior}


def outcomes(results: Sequence[EpisodeResult], rollout_seconds: float, action_scale: np.ndarray | None = None) -> dict:
    """What a row says of its episodes: score, success with its Wilson interval, length, and smoothness (the
    jerk of the executed actions in action units, its split at chunk boundaries, and with ``action_scale``
    the jerk in the policy's normalized units), each episode's beside the means."""
    n_success = sum(r.success for r in results)
    low, high = wilson_interval(n_success, len(results))
    empty = {"jerk": None, "boundary": None, "interior": None}
    parts = [chunk_jerk(r.actions, r.chunk_starts) if r.actions else empty for r in results]
    normalized = [chunk_jerk(r.actions, r.chunk_starts, action_scale)["jerk"] if r.actions and action_scale is not None
                  else None for r in results]
    boundary, interior = mean_jerk([p["boundary"] for p in parts]), mean_jerk([p["interior"] for p in parts])
    return {
        "episodes": len(results),
        "score": float(np.mean([r.score for r in results])),
        "success_rate": n_success / len(results),
        "success_ci95": [low, high],
        "mean_length": float(np.mean([r.length for r in results])),
        "jerk": mean_jerk([p["jerk"] for p in parts]),  # action units; None when no episode has 3 actions
        "jerk_normalized": mean_jerk(normalized),  # the policy's [-1, 1] units, comparable across tasks
        "boundary_jerk": boundary,  # windows across two chunks
        "interior_jerk": interior,
        "boundary_minus_interior": None if boundary is None or interior is None else boundary - interior,
        "rollout_seconds": rollout_seconds,
        "per_episode": [{"seed": r.seed, "score": r.score, "success": r.success, "length": r.length, "jerk": p["jerk"],
                         "jerk_normalized": jn, "boundary_jerk": p["boundary"], "interior_jerk": p["interior"]}
                        for r, p, jn in zip(results, parts, normalized)],
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
        row = {"steps": steps, **outcomes(results, rollout_s, action_scale(policy))}
        if latency_calls:
            row.update(measure_act_latency(policy, env, steps, n_calls=latency_calls, seed=seed_start))
        if video_dir:
            for r in results[:n_videos]:
                save_video(Path(video_dir) / f"steps{steps:03d}_seed{r.seed}.mp4", r.frames)
        rows.append(row)
        if progress:
            print(format_row(row))
    return rows


def clock_for(policy, spec: EnvSpec, steps: int, delay: int | str, lookahead: int | None) -> tuple[ControlClock, float | None]:
    """The clock of one row: a fixed ``delay`` in control ticks, or ``"measured"``: the median replanning time
    of ``act`` at batch 1 at ``steps`` on this machine (50 calls), turned into ticks at the env's rate.
    ``lookahead`` None: equal to the delay. Returns the clock and the latency it came from (ms, or None)."""
    if delay == "measured":
        if spec.control_hz is None:
            raise ValueError(f"clock_delays: 'measured' needs the env's control rate, and {spec.name} declares none "
                             "(EnvSpec.control_hz); give delays in control ticks")
        latency = measure_act_latency(policy, spec, steps, n_calls=20 * policy.n_action_steps)["replan_median_ms"]  # 20 replans
        return ControlClock.from_latency(latency, spec.control_hz, lookahead), latency
    if isinstance(delay, bool) or not isinstance(delay, int):
        raise ValueError(f"clock_delays: expected control ticks (whole numbers >= 0) or 'measured', got {delay!r}")
    return ControlClock(delay, delay if lookahead is None else lookahead), None


def check_clocks(policy, spec: EnvSpec, delays: Sequence[int | str], lookahead: int | None) -> None:
    """Every clock of an evaluation, refused before anything is rolled out if it cannot run."""
    if lookahead is not None and (isinstance(lookahead, bool) or not isinstance(lookahead, int) or not 0 <= lookahead <= 1000):
        raise ValueError(f"clock_lookahead: expected control ticks (a whole number in [0, 1000]) or null (the delay), got {lookahead!r}")
    if lookahead is not None and not delays:
        raise ValueError(f"clock_lookahead: {lookahead} is for clocked rows, and clock_delays is empty; give delays too")
    if delays and policy.temporal_ensemble is not None:
        raise ValueError("temporal_ensemble, clock_delays: a clocked rollout executes chunks as they land, without "
                         "ensembling; evaluate them apart")
    for delay in delays:
        if delay == "measured" and spec.control_hz is None:
            clock_for(policy, spec, 1, delay, lookahead)  # raises, naming the env
        if delay != "measured":
            if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 1000:
                raise ValueError(f"clock_delays: expected control ticks (whole numbers in [0, 1000]) or 'measured', got {delay!r}")
            try:
                ClockedControl(policy, clock_for(policy, spec, 1, delay, lookahead)[0])
            except ValueError as err:
                raise ValueError(f"clock_delays: {delay}: {str(err).removeprefix('clock.delay_steps: ')}") from None


def evaluate_on_clock(
    policy,
    env: str | EnvSpec,
    steps_list: Sequence[int],
    delays: Sequence[int | str],
    episodes: int = 50,
    seed_start: int = 0,
    lookahead: int | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> list[dict]:
    """One row per (step budget, delay): the episodes run on a control clock (``clock.py``) whose replans land
    ``delay`` ticks after they start, the robot going on with its queue (holding its last action when the
    queue runs dry). Same test seeds and noise as the synchronous rows, so a row and its delay-0 twin pair."""
    spec = resolve_env(env)
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    for steps in steps_list:
        policy.objective.validate_steps(steps)
    check_clocks(policy, spec, delays, lookahead)
    seeds = list(range(seed_start, seed_start + episodes))
    rows = []
    for steps in steps_list:
        for delay in delays:
            clock, latency = clock_for(policy, spec, steps, delay, lookahead)
            ahead = policy.horizon - policy.n_obs_steps
            if clock.delay_steps > ahead:  # a measured latency too long for the chunk: a row that says so
                rows.append({"steps": steps, "delay_steps": clock.delay_steps, "lookahead": clock.lookahead, "latency_ms": latency,
                             "control_hz": spec.control_hz, "refused": f"the chunk holds actions up to {ahead} ticks ahead"})
                print(f"steps={steps:>3} delay={clock.delay_steps} ({latency:.1f} ms): {rows[-1]['refused']}, not rolled out")
                continue
            start = time.perf_counter()
            results = rollout(policy, spec, seeds, steps, progress=progress, workers=workers, clock=clock)
            row = {"steps": steps, "delay_steps": clock.delay_steps, "lookahead": clock.lookahead,
                   "latency_ms": latency, "control_hz": spec.control_hz,
                   **outcomes(results, time.perf_counter() - start, action_scale(policy)),
                   "dry_ticks": float(np.mean([r.dry_ticks for r in results]))}
            rows.append(row)
            if progress:
                print(format_row(row, head=f"steps={steps:>3} delay={clock.delay_steps}"
                                           + (f" ({latency:.1f} ms)" if latency is not None else "")))
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
            **outcomes(results, rollout_s, action_scale(policy)),
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
