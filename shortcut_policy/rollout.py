"""Rollouts of a policy over fixed test seeds, with every episode stepped side by side.

All live episodes share one batched ``predict_chunk`` per replanning tick, so 50 episodes cost
about as many network calls as one; ``act()`` latency is measured separately, at batch 1, as a
control loop sees it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .envs import get_env_spec


@dataclass
class EpisodeResult:
    seed: int
    max_reward: float  # Diffusion Policy's Push-T score of one episode
    success: bool
    length: int
    frames: list[np.ndarray] = field(default_factory=list, repr=False)


def check_obs_shapes(obs_shapes: Mapping[str, tuple[int, ...]], env_name: str) -> None:
    """Refuse, before anything runs, a policy whose observations the env does not give as they are.

    Same size is not enough: Diffusion Policy's Push-T store holds (9, 2) keypoints sampled on the
    block, this env's (18,) keypoint is the T's 8 corners and the agent, so no reshape maps one
    onto the other.
    """
    spec = get_env_spec(env_name)
    spec.check_obs_keys(obs_shapes)
    for key, shape in obs_shapes.items():
        if tuple(shape) != tuple(spec.obs_shapes[key]):
            raise ValueError(
                f"obs[{key!r}]: the policy observes shape {tuple(shape)} (its training data), the {env_name} env "
                f"gives {tuple(spec.obs_shapes[key])}: it cannot be rolled out in this env"
            )


def rollout(
    policy,
    env_name: str,
    seeds: Sequence[int],
    steps: int,
    n_videos: int = 0,
    video_size: int = 256,
    progress: bool = True,
    noise_seed: int = 0,
) -> list[EpisodeResult]:
    """Run one episode per seed, all side by side; the first ``n_videos`` episodes keep RGB frames.

    The sampler's initial noise comes from its own generator seeded with ``noise_seed``, so a
    rollout's result depends only on (policy, seeds, steps, noise_seed), not on what ran before it.
    """
    spec = get_env_spec(env_name)
    check_obs_shapes(policy.obs_shapes, env_name)
    generator = torch.Generator().manual_seed(noise_seed)
    policy.objective.validate_steps(steps)
    n = len(seeds)
    envs = [
        spec.make(**({"visualization_width": video_size, "visualization_height": video_size} if i < n_videos else {}))
        for i in range(n)
    ]
    results = [EpisodeResult(seed=int(s), max_reward=0.0, success=False, length=0) for s in seeds]
    histories: list[list[dict]] = []
    for i, (env, seed) in enumerate(zip(envs, seeds)):
        obs, _ = env.reset(seed=int(seed))
        histories.append([obs] * policy.n_obs_steps)  # pad the start by repeating the first frame
        if i < n_videos:
            results[i].frames.append(env.render())
    queues: list[list[np.ndarray]] = [[] for _ in range(n)]
    live = list(range(n))
    bar = tqdm(total=spec.max_episode_steps, desc=f"rollout steps={steps}", unit="tick", disable=not progress, leave=False)
    while live:
        replan = [i for i in live if not queues[i]]
        if replan:
            batch = {
                k: np.stack([np.stack([o[k] for o in histories[i][-policy.n_obs_steps:]]) for i in replan])
                for k in policy.obs_keys
            }  # (b, To, *shape)
            chunks = policy.predict_chunk(batch, steps=steps, validate=False, generator=generator)  # (b, Ta, A)
            for i, chunk in zip(replan, chunks):
                queues[i] = list(chunk)
        still_live = []
        for i in live:
            obs, reward, terminated, truncated, info = envs[i].step(queues[i].pop(0))
            result = results[i]
            result.length += 1
            result.max_reward = max(result.max_reward, float(reward))
            result.success = result.success or bool(info.get("is_success", False))
            histories[i] = histories[i][-(policy.n_obs_steps - 1):] + [obs] if policy.n_obs_steps > 1 else [obs]
            if i < n_videos:
                result.frames.append(envs[i].render())
            if not (terminated or truncated):
                still_live.append(i)
        live = still_live
        bar.update(1)
    bar.close()
    for env in envs:
        env.close()
    return results


def measure_act_latency(
    policy, env_name: str, steps: int, n_calls: int = 200, seed: int = 0, warmup: int = 16
) -> dict[str, float]:
    """Wall-clock of ``policy.act`` at batch 1 in a real control loop: every call, and replanning calls only."""
    spec = get_env_spec(env_name)
    env = spec.make()
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

    from .io import atomic_write

    return atomic_write(path, lambda tmp: imageio.mimsave(tmp, frames, fps=fps, format="mp4"))
