"""Rollouts of a policy over fixed test seeds, with the episodes stepped side by side.

All live episodes share one batched ``predict_chunk`` per replanning tick, so 50 episodes cost
about as many network calls as one (up to the env's ``rollout_envs`` alive at once); ``act()`` latency is measured separately, at batch 1, as a
control loop sees it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..envs import EnvSpec, resolve_env
from .env_pool import EnvPool
from ..models.obs_encoder import is_image


@dataclass
class EpisodeResult:
    seed: int
    score: float  # the env's episode score: the max over steps of its step score (Push-T: coverage)
    success: bool
    length: int
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def check_fits_env(obs_shapes: Mapping[str, tuple[int, ...]], action_dim: int, env: str | EnvSpec) -> None:
    """Refuse, before anything runs, a policy whose observations the env does not give as they are, or
    whose actions are not the env's.

    Same size is not enough (a (9, 2) and an (18,) observation may mean different points), so no
    reshape is tried.
    """
    spec = resolve_env(env)
    env_name = spec.name
    if action_dim != spec.action_dim:
        raise ValueError(f"action: the policy acts in {action_dim} dimensions (its training data), the {env_name} "
                         f"env takes {spec.action_dim}: it cannot be rolled out in this env")
    spec.check_obs_keys(obs_shapes)
    for key, shape in obs_shapes.items():
        if tuple(shape) != tuple(spec.obs[key].shape):
            raise ValueError(
                f"obs[{key!r}]: the policy observes shape {tuple(shape)} (its training data), the {env_name} env "
                f"gives {tuple(spec.obs[key].shape)}: it cannot be rolled out in this env"
            )


def rollout(
    policy,
    env: str | EnvSpec,
    seeds: Sequence[int],
    steps: int,
    n_videos: int = 0,
    video_size: int = 256,
    progress: bool = True,
    noise_seed: int = 0,
    workers: int | None = None,
) -> list[EpisodeResult]:
    """Run one episode per seed, side by side; the first ``n_videos`` episodes keep RGB frames.

    ``env``: a configured spec (``EnvConfig.spec()``: task, episode length, ``rollout_envs``), or an
    env's name. At most ``spec.rollout_envs`` environments are alive at once (0: one per seed): each is
    reset with the next seed when its episode ends, so the policy's batch stays full while an env's
    memory (a renderer per camera) is held only that many times. ``workers``: processes the
    environments are stepped in (0: this process; None: the env's ``rollout_workers``). The sampler's
    initial noise comes from its own generator seeded with ``noise_seed``, so a rollout's result
    depends only on (policy, seeds, steps, noise_seed, rollout_envs), not on what ran before it nor on
    where the environments run.
    """
    spec = resolve_env(env)
    check_fits_env(policy.obs_shapes, policy.action_dim, spec)
    generator = torch.Generator().manual_seed(noise_seed)
    policy.objective.validate_steps(steps)
    n = len(seeds)
    n_videos = min(n_videos, n)
    slots = max(min(n, spec.rollout_envs or n), n_videos)  # filmed episode i runs first, in env i
    kwargs = [{"obs_keys": list(policy.obs_keys), **({"render_size": video_size} if j < n_videos else {})} for j in range(slots)]
    results = [EpisodeResult(seed=int(s), score=-math.inf, success=False, length=0) for s in seeds]
    cameras = [k for k in policy.obs_keys if is_image(policy.obs_shapes[k])]  # what the policy sees, filmed beside the env
    episode_in: dict[int, int] = {}  # env slot -> the episode (index into seeds) it runs now
    histories: dict[int, list[dict]] = {}
    queues: dict[int, list[np.ndarray]] = {}

    def start(assigned: dict[int, int]) -> None:  # slot -> episode: reset each slot with its episode's seed
        first = envs.reset({j: int(seeds[i]) for j, i in assigned.items()})
        for j, i in assigned.items():
            episode_in[j], queues[j] = i, []
            histories[j] = [first[j]] * policy.n_obs_steps  # pad the start by repeating the first frame
        film(first, [j for j, i in assigned.items() if i < n_videos])

    def film(obs: Mapping[int, dict], filmed: list[int]) -> None:
        for j, frame in envs.render(filmed).items():
            results[episode_in[j]].frames.append(beside(frame, obs[j], cameras))

    with EnvPool(spec.make, kwargs, spec.rollout_workers if workers is None else workers) as envs, \
            tqdm(total=n, desc=f"rollout steps={steps}", unit="episode", disable=not progress, leave=False) as bar:
        start({j: j for j in range(slots)})
        waiting = iter(range(slots, n))  # episodes not started yet, in seed order
        while episode_in:
            replan = [j for j in episode_in if not queues[j]]
            if replan:
                batch = {
                    k: np.stack([np.stack([o[k] for o in histories[j][-policy.n_obs_steps:]]) for j in replan])
                    for k in policy.obs_keys
                }  # (b, To, *shape)
                chunks = policy.predict_chunk(batch, steps=steps, validate=False, generator=generator)  # (b, Ta, A)
                for j, chunk in zip(replan, chunks):
                    queues[j] = list(chunk)
            stepped = envs.step({j: queues[j].pop(0) for j in episode_in})
            film({j: out[0] for j, out in stepped.items()}, [j for j, i in episode_in.items() if i < n_videos])
            freed = []
            for j, (obs, reward, terminated, truncated, info) in stepped.items():
                result = results[episode_in[j]]
                result.length += 1
                result.score = max(result.score, spec.score(float(reward), info))
                result.success = result.success or spec.success(info)
                histories[j] = histories[j][-(policy.n_obs_steps - 1):] + [obs] if policy.n_obs_steps > 1 else [obs]
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
