"""Rollouts of a policy over fixed test seeds, with the episodes stepped side by side.

Every tick the live episodes' observations go through one batched ``policy.act`` (the one a robot's
control loop calls, with a history and an action queue per episode), so the rows whose queue ran dry
share one network call: 50 episodes cost about as many calls as one (up to the env's ``rollout_envs``
alive at once). ``act()`` latency is measured separately, at batch 1, as a control loop sees it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from tqdm import tqdm

from ..contract import PolicyContract
from ..deadline import check_deadline
from ..envs import EnvSpec, resolve_env
from .clock import ClockedControl, ControlClock
from .env_pool import EnvPool


@dataclass
class EpisodeResult:
    seed: int
    score: float  # the env's episode score: the max over steps of its step score (Push-T: coverage)
    success: bool
    length: int
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    actions: list[np.ndarray] = field(default_factory=list, repr=False)  # what the env was given, tick by tick
    chunk_starts: list[int] = field(default_factory=list)  # the ticks whose action began a new chunk
    dry_ticks: int = 0  # on a control clock: ticks whose chunk had not landed, the last action held


def check_fits_env(contract: PolicyContract, env: str | EnvSpec) -> None:
    """Refuse, before anything runs, a policy whose observations the env does not give as they are (shape
    and kind), or whose actions are not the env's.

    Same size is not enough (a (9, 2) and an (18,) observation may mean different points), so no
    reshape is tried.
    """
    spec = resolve_env(env)
    env_name = spec.name
    if contract.action_dim != spec.action_dim:
        raise ValueError(f"action: the policy acts in {contract.action_dim} dimensions (its training data), the {env_name} "
                         f"env takes {spec.action_dim}: it cannot be rolled out in this env")
    spec.check_obs_keys(contract.obs_keys)
    for key, feature in contract.obs.items():
        given = spec.obs[key]
        if feature.shape != given.shape:
            raise ValueError(
                f"obs[{key!r}]: the policy observes shape {feature.shape} (its training data), the {env_name} env "
                f"gives {given.shape}: it cannot be rolled out in this env"
            )
        if feature.type != given.type:
            raise ValueError(f"obs[{key!r}]: the policy observes it as {feature.type}, the {env_name} env gives "
                             f"{given.type}: it cannot be rolled out in this env")


def rollout(
    policy,
    env: str | EnvSpec,
    seeds: Sequence[int],
    steps: int | None,
    n_videos: int = 0,
    video_size: int = 256,
    progress: bool = True,
    noise_seed: int = 0,
    workers: int | None = None,
    deadline_ms: float | None = None,
    clock: ControlClock | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed, side by side; the first ``n_videos`` episodes keep RGB frames.

    ``env``: a configured spec (``EnvConfig.spec()``: task, episode length, ``rollout_envs``), or an
    env's name. At most ``spec.rollout_envs`` environments are alive at once (0: one per seed): each is
    reset with the next seed when its episode ends, so the policy's batch stays full while an env's
    memory (a renderer per camera) is held only that many times. ``workers``: processes the
    environments are stepped in (0: this process; None: the env's ``rollout_workers``). The sampler's
    initial noise comes from its own generator seeded with ``noise_seed``, so a rollout's result
    depends only on (policy, seeds, steps, noise_seed, rollout_envs), not on what ran before it nor on
    where the environments run. Each env slot is a row of ``policy.act``, in a control state of the
    rollout's own (``policy.separate_control``): the caller's rows and noise generator are left as they were.

    ``deadline_ms`` (instead of ``steps``): the policy picks each replan's budget (``act(deadline_ms=...)``)
    from its replanning times on this machine. The episodes then run one at a time, so that every replan
    is one robot's (batch 1); which budget is picked depends on the wall clock, so such a rollout is not
    reproducible call for call.

    ``clock``: the episodes run on a control clock (``clock.py``): each replan lands ``clock.delay_steps``
    ticks after it started, the robot going on with its queue meanwhile.
    """
    spec = resolve_env(env)
    check_fits_env(policy.contract, spec)
    if deadline_ms is None:
        policy.objective.validate_steps(steps)
    elif steps is not None:
        raise ValueError(f"steps, deadline_ms: give one of them, got steps={steps!r} and deadline_ms={deadline_ms!r}")
    else:
        check_deadline(deadline_ms)
    if clock is not None and deadline_ms is not None:
        raise ValueError(f"clock, deadline_ms: a deadline picks budgets by wall time, a clock fixes the delay; "
                         f"give one, got clock={clock} and deadline_ms={deadline_ms}")
    clocked = ClockedControl(policy, clock) if clock is not None else None
    n = len(seeds)
    n_videos = min(n_videos, n)
    slots = max(min(n, spec.rollout_envs or n), n_videos)  # filmed episode i runs first, in env i
    if deadline_ms is not None:
        n_videos, slots = min(n_videos, 1), 1
    kwargs = [{"obs_keys": list(policy.obs_keys), **({"render_size": video_size} if j < n_videos else {})} for j in range(slots)]
    results = [EpisodeResult(seed=int(s), score=-math.inf, success=False, length=0) for s in seeds]
    cameras = policy.contract.cameras  # what the policy sees, filmed beside the env
    episode_in: dict[int, int] = {}  # env slot (the policy's row) -> the episode (index into seeds) it runs now
    current: dict[int, dict] = {}  # env slot -> its latest observation

    def start(assigned: dict[int, int]) -> None:  # slot -> episode: reset each slot with its episode's seed
        first = envs.reset({j: int(seeds[i]) for j, i in assigned.items()})
        policy.reset(rows=list(assigned))  # a new episode in the slot: its history and queue start empty
        if clocked is not None:
            clocked.reset(list(assigned))
        for j, i in assigned.items():
            episode_in[j], current[j] = i, first[j]
        film(first, [j for j, i in assigned.items() if i < n_videos])

    def film(obs: Mapping[int, dict], filmed: list[int]) -> None:
        for j, frame in envs.render(filmed).items():
            results[episode_in[j]].frames.append(beside(frame, obs[j], cameras))

    with policy.separate_control(noise_seed), \
            EnvPool(spec.make, kwargs, spec.rollout_workers if workers is None else workers) as envs, \
            tqdm(total=n, desc=f"rollout steps={steps}" if deadline_ms is None else f"rollout deadline={deadline_ms}ms",
                 unit="episode", disable=not progress, leave=False) as bar:
        start({j: j for j in range(slots)})
        waiting = iter(range(slots, n))  # episodes not started yet, in seed order
        while episode_in:
            live = list(episode_in)  # in the order the slots' episodes started: the replanning rows' noise order
            obs = {k: np.stack([current[j][k] for j in live]) for k in policy.obs_keys}  # (b, *shape)
            if clocked is None:
                # an ensembled policy plans at every tick and executes no chunk as such: no chunk starts
                starting = policy.will_replan_rows(live) if getattr(policy, "temporal_ensemble", None) is None else [False] * len(live)
                actions = policy.act(obs, steps=steps, rows=live, deadline_ms=deadline_ms)  # (b, A)
            else:
                actions = clocked.act(obs, live, steps)  # (b, A)
                starting = [clocked.loops[j].new_chunk for j in live]
            stepped = envs.step(dict(zip(live, actions)))
            film({j: out[0] for j, out in stepped.items()}, [j for j, i in episode_in.items() if i < n_videos])
            freed = []
            for j, action, new_chunk in zip(live, actions, starting):
                obs_j, reward, terminated, truncated, info = stepped[j]
                result = results[episode_in[j]]
                if new_chunk:
                    result.chunk_starts.append(result.length)
                if clocked is not None:
                    result.dry_ticks = clocked.loops[j].dry_ticks
                result.actions.append(action)
                result.length += 1
                result.score = max(result.score, spec.score(float(reward), info))
                result.success = result.success or spec.success(info)
                current[j] = obs_j
                if terminated or truncated:
                    freed.append(j)
            bar.update(len(freed))
            for j in freed:
                del episode_in[j]
            following = {j: i for j, i in zip(freed, waiting)}
            if following:
                start(following)
    return results


def beside(frame: np.ndarray, obs: Mapping[str, np.ndarray], cameras: Sequence[str]) -> np.ndarray:
    """A video frame (H, W, 3) with the policy's camera images to its right, each scaled up by a whole
    factor (nearest pixel) to at most H rows and laid on black: the video shows what the policy saw."""
    panels = [frame]
    for key in cameras:
        image = obs[key]
        scale = max(1, frame.shape[0] // image.shape[0])
        image = image.repeat(scale, axis=0).repeat(scale, axis=1)[: frame.shape[0]]
        panel = np.zeros((frame.shape[0], image.shape[1], 3), np.uint8)
        panel[: image.shape[0]] = image
        panels.append(panel)
    return np.concatenate(panels, axis=1) if cameras else frame


def measure_act_latency(
    policy, env: str | EnvSpec, steps: int, n_calls: int = 200, seed: int = 0, warmup: int = 16
) -> dict[str, float]:
    """Wall-clock of ``policy.act`` at batch 1 in a real control loop: every call, and replanning calls only."""
    env = resolve_env(env).make(obs_keys=list(policy.obs_keys))
    obs, _ = env.reset(seed=seed)
    policy.reset()
    all_calls, replans = [], []
    for call in range(warmup + n_calls):
        replanning = policy.will_replan
        start = time.perf_counter()
        action = policy.act(obs, steps=steps)
        elapsed = time.perf_counter() - start
        if call >= warmup:
            all_calls.append(elapsed)
            if replanning:
                replans.append(elapsed)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + call + 1)
            policy.reset()
    env.close()
    return {
        "act_median_ms": float(np.median(all_calls) * 1e3),
        "act_p95_ms": float(np.percentile(all_calls, 95) * 1e3),
        "replan_median_ms": float(np.median(replans) * 1e3),
        "replan_p95_ms": float(np.percentile(replans, 95) * 1e3),
        "n_calls": n_calls,
    }


def save_video(path: str | Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    import imageio

    from ..utils.io import atomic_write

    return atomic_write(path, lambda tmp: imageio.mimsave(tmp, frames, fps=fps, format="mp4"))
