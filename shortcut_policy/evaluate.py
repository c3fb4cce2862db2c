"""Rollout evaluation of a checkpoint at several step budgets, on fixed test seeds.

    python -m shortcut_policy.evaluate checkpoint=outputs/.../policy.safetensors steps=[1,2,4,8,16,32,64,128] episodes=50
    python -m shortcut_policy.evaluate checkpoint=... deadline_ms=[2,5,10,20,50]   # the policy picks its budget

Writes ``eval.json``, ``eval.md`` and ``eval.png`` beside the checkpoint (or into ``out``), plus a
few rollout videos.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from .checkpoint import EVAL_DIR
from .config import EnvConfig, as_trained, load_config
from .evaluation.report import clock_table, deadline_table, markdown_table, write_report
from .evaluation.sweep import check_clocks, demonstration_smoothness, evaluate_deadlines, evaluate_on_clock, evaluate_policy
from .utils.cli import one_line_errors
from .utils.paths import config_dir


def load_for_evaluation(cfg: DictConfig):
    """(checkpoint file, policy with the ``sampling.*`` options given, step budgets, deadlines), all checked: with
    deadlines and no steps named, only the deadlines are evaluated."""
    from .checkpoint import resolve_checkpoint
    from .objectives import check_steps
    from .policy import load_policy

    if not cfg.checkpoint:
        raise ValueError("checkpoint: expected a policy.safetensors file or a run folder, got nothing (checkpoint=...)")
    file = resolve_checkpoint(cfg.checkpoint)
    sampling = {k: v for k, v in OmegaConf.to_container(cfg.sampling).items() if v is not None}
    policy = load_policy(file, device=cfg.device, sampling=sampling)
    policy.temporal_ensemble = cfg.get("temporal_ensemble")  # checked here, before any rollout
    from .deadline import check_deadline

    deadlines = cfg.get("deadline_ms") or []
    if not OmegaConf.is_list(deadlines) and not isinstance(deadlines, list):
        deadlines = [deadlines]  # deadline_ms=20: one deadline
    deadlines = list(deadlines)
    for deadline in deadlines:
        check_deadline(deadline)
    steps_list = list(cfg.steps) if cfg.steps else ([] if deadlines else policy.objective.valid_steps())
    check_steps("steps", steps_list, policy.objective)
    if cfg.get("clock_delays") and not steps_list:
        raise ValueError(f"clock_delays: the clocked rows run at the step budgets, and none is asked (steps={list(cfg.steps)} "
                         "with deadlines only); name steps=[...] too")
    return file, policy, steps_list, deadlines


def trained_env(file: str | Path, policy) -> EnvConfig:
    """The env section of the run config the policy was trained with (its provenance): rollouts need the env
    registered here, though loading the policy did not."""
    if "config" not in policy.meta:
        raise ValueError(f"checkpoint {file}: no run config is stored beside its contract, so the env it was trained "
                         "in is unknown; evaluate it with your own rollout (shortcut_policy.evaluation.rollout)")
    return load_config(as_trained(policy.meta["config"])).env


@hydra.main(config_path=str(config_dir()), config_name="evaluate", version_base=None)
@one_line_errors
def main(cfg: DictConfig) -> None:
    file, policy, steps_list, deadlines = load_for_evaluation(cfg)
    spec = trained_env(file, policy).spec()  # the task and episode length the policy was trained for
    if cfg.rollout_envs is not None:  # like rollout_workers, this machine's choice
        spec = dataclasses.replace(spec, rollout_envs=cfg.rollout_envs)
    env_name = spec.id
    delays = cfg.get("clock_delays") or []
    delays = list(delays) if OmegaConf.is_list(delays) or isinstance(delays, list) else [delays]  # clock_delays=2: one
    check_clocks(policy, spec, delays, cfg.get("clock_lookahead"))  # before any rollout
    out_dir = Path(cfg.out) if cfg.out else file.parent / EVAL_DIR
    print(f"evaluating {file} on {env_name}: steps {steps_list}, deadlines (ms) {deadlines}, {cfg.episodes} episodes; "
          f"outputs -> {out_dir}")
    rows = evaluate_policy(  # rollout_workers: this machine's choice, not the one the run was trained with
        policy, spec, steps_list, cfg.episodes, cfg.seed_start, cfg.latency_calls, cfg.videos, out_dir / "videos",
        workers=cfg.rollout_workers,
    ) if steps_list else []
    deadline_rows = evaluate_deadlines(policy, spec, deadlines, cfg.episodes, cfg.seed_start, workers=cfg.rollout_workers)
    clock_rows = evaluate_on_clock(policy, spec, steps_list, delays, cfg.episodes, cfg.seed_start, cfg.get("clock_lookahead"),
                                   workers=cfg.rollout_workers) if delays else []
    demonstrations = demonstration_smoothness(policy)  # None when the store it was trained on is not here
    paths = write_report(
        out_dir,
        rows,
        {"checkpoint": str(file), "env": env_name, "objective": policy.contract.objective["name"], "config": OmegaConf.to_container(cfg),
         "demonstrations": demonstrations,
         "objective_options": dataclasses.asdict(policy.objective.config)},  # what sampled, defaults included
        spec,
        title=f"{spec.label} · {policy.contract.objective['name']}",
        deadline_rows=deadline_rows,
        clock_rows=clock_rows,
    )
    if rows:
        print(markdown_table(rows, demonstrations))
    if deadline_rows:
        print(deadline_table(deadline_rows))
    if clock_rows:
        print(clock_table(clock_rows))
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    if cfg.videos:
        print(f"wrote videos: {out_dir / 'videos'}")


if __name__ == "__main__":
    main()
