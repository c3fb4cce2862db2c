"""Rollout evaluation of a checkpoint at several step budgets, on fixed test seeds.

    python -m shortcut_policy.evaluate checkpoint=outputs/.../policy.safetensors steps=[1,2,4,8,16,32,64,128] episodes=50

For each step budget: the Push-T score (mean over episodes of the max reward, Diffusion Policy's
metric), the success rate with a 95% Wilson interval, the mean episode length, and ``act()``
latency at batch 1 (median / p95 per call, and per replanning call). Writes ``eval.json``,
``eval.md`` and ``eval.png`` (score and latency against steps), plus a few rollout videos.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import hydra
import numpy as np
from omegaconf import DictConfig, OmegaConf

from .io import atomic_write, write_json, write_text
from .paths import config_dir
from .rollout import measure_act_latency, rollout, save_video
from .stats import wilson_interval


def evaluate_policy(
    policy,
    env_name: str,
    steps_list: Sequence[int],
    episodes: int = 50,
    seed_start: int = 0,
    latency_calls: int = 200,
    n_videos: int = 0,
    video_dir: str | Path | None = None,
    progress: bool = True,
) -> list[dict]:
    """One row per step budget; test seeds are ``seed_start .. seed_start + episodes - 1``."""
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    for steps in steps_list:
        policy.objective.validate_steps(steps)
    seeds = list(range(seed_start, seed_start + episodes))
    rows = []
    for steps in steps_list:
        start = time.perf_counter()
        results = rollout(policy, env_name, seeds, steps, n_videos=n_videos if video_dir else 0, progress=progress)
        rollout_s = time.perf_counter() - start
        n_success = sum(r.success for r in results)
        low, high = wilson_interval(n_success, len(results))
        row = {
            "steps": steps,
            "episodes": len(results),
            "score": float(np.mean([r.max_reward for r in results])),
            "success_rate": n_success / len(results),
            "success_ci95": [low, high],
            "mean_length": float(np.mean([r.length for r in results])),
            "rollout_seconds": rollout_s,
            "per_episode": [{"seed": r.seed, "max_reward": r.max_reward, "success": r.success, "length": r.length} for r in results],
        }
        if latency_calls:
            row.update(measure_act_latency(policy, env_name, steps, n_calls=latency_calls, seed=seed_start))
        if video_dir:
            for r in results[:n_videos]:
                save_video(Path(video_dir) / f"steps{steps:03d}_seed{r.seed}.mp4", r.frames)
        rows.append(row)
        if progress:
            print(format_row(row))
    return rows


def format_row(row: dict) -> str:
    low, high = row["success_ci95"]
    text = (
        f"steps={row['steps']:>3}  score={row['score']:.3f}  success={row['success_rate']:.0%} "
        f"[{low:.0%}, {high:.0%}]  len={row['mean_length']:.0f}"
    )
    if "act_median_ms" in row:
        text += f"  act={row['act_median_ms']:.2f}/{row['act_p95_ms']:.2f}ms  replan={row['replan_median_ms']:.2f}/{row['replan_p95_ms']:.2f}ms"
    return text


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| steps (NFE) | score | success (95% CI) | mean length | act median / p95 (ms) | replan median / p95 (ms) |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["success_ci95"]
        lat = f"{r['act_median_ms']:.2f} / {r['act_p95_ms']:.2f}" if "act_median_ms" in r else "-"
        rep = f"{r['replan_median_ms']:.2f} / {r['replan_p95_ms']:.2f}" if "replan_median_ms" in r else "-"
        lines.append(
            f"| {r['steps']} | {r['score']:.3f} | {r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | "
            f"{r['mean_length']:.0f} | {lat} | {rep} |"
        )
    return "\n".join(lines) + "\n"


def plot_rows(path: str | Path, rows: list[dict], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(steps, [r["score"] for r in rows], "o-", label="score (mean max reward)")
    ax1.plot(steps, [r["success_rate"] for r in rows], "s--", label="success rate")
    ax1.set(xscale="log", xlabel="sampling steps (NFE)", ylabel="Push-T score", ylim=(0, 1.05), title=title)
    ax1.set_xticks(steps, [str(s) for s in steps])
    ax1.legend()
    if "replan_median_ms" in rows[0]:
        ax2.plot(steps, [r["replan_median_ms"] for r in rows], "o-", label="replanning act() median")
        ax2.plot(steps, [r["act_median_ms"] for r in rows], "s--", label="act() median, all calls")
        ax2.set(xscale="log", yscale="log", xlabel="sampling steps (NFE)", ylabel="latency (ms, batch 1)")
        ax2.set_xticks(steps, [str(s) for s in steps])
        ax2.legend()
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def write_report(out_dir: str | Path, rows: list[dict], meta: dict, title: str = "") -> dict[str, Path]:
    """Write eval.json, eval.md and eval.png into ``out_dir``."""
    out_dir = Path(out_dir)
    paths = {
        "json": write_json(out_dir / "eval.json", {**meta, "rows": rows}),
        "markdown": write_text(out_dir / "eval.md", markdown_table(rows)),
        "plot": plot_rows(out_dir / "eval.png", rows, title),
    }
    return paths


def load_for_evaluation(cfg: DictConfig):
    """(checkpoint file, policy with the ``sampling.*`` options given, step budgets), all checked."""
    from .checkpoint import resolve_checkpoint
    from .objectives import check_steps
    from .policy import load_policy

    if not cfg.checkpoint:
        raise ValueError("checkpoint: expected a policy.safetensors file or a run folder, got nothing (checkpoint=...)")
    file = resolve_checkpoint(cfg.checkpoint)
    sampling = {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}
    policy = load_policy(file, device=cfg.device, sampling=sampling)
    steps_list = list(cfg.steps) if cfg.steps else policy.objective.valid_steps()
    check_steps("steps", steps_list, policy.objective)
    return file, policy, steps_list


@hydra.main(config_path=str(config_dir()), config_name="evaluate", version_base=None)
def main(cfg: DictConfig) -> None:
    file, policy, steps_list = load_for_evaluation(cfg)
    env_name = policy.config.env.name
    out_dir = Path(cfg.out) if cfg.out else file.parent / "eval"
    print(f"evaluating {file} on {env_name}: steps {steps_list}, {cfg.episodes} episodes; outputs -> {out_dir}")
    rows = evaluate_policy(
        policy, env_name, steps_list, cfg.episodes, cfg.seed_start, cfg.latency_calls, cfg.videos, out_dir / "videos"
    )
    paths = write_report(
        out_dir,
        rows,
        {"checkpoint": str(file), "env": env_name, "objective": policy.config.objective["name"], "config": OmegaConf.to_container(cfg),
         "objective_options": dataclasses.asdict(policy.objective.config)},  # what sampled, defaults included
        title=f"{env_name} · {policy.config.objective['name']}",
    )
    print(markdown_table(rows))
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    if cfg.videos:
        print(f"wrote videos: {out_dir / 'videos'}")


if __name__ == "__main__":
    main()
