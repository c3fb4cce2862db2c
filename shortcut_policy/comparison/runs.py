"""Shortcut vs flow matching vs Diffusion Policy (DDPM/DDIM) on one backbone, the same data and budget
(``python -m shortcut_policy.compare``): plan the runs, train them, evaluate them, aggregate the rows.

Every method is trained with the same ``train`` settings for each training seed (or taken from
given run folders), then rolled out at its step budgets on the same test seeds. Written to the
output folder: ``compare.md`` (the table), ``compare.json``, and ``score_vs_nfe.png``,
``latency_vs_nfe.png``, ``pareto.png``.

Aggregates: the score is the mean over training seeds of each run's score (the env's episode score), with a 95%
Student-t interval across training seeds (none with one seed); success is pooled over all
episodes of all seeds, with a 95% Wilson interval; latency is ``act()`` at batch 1 on the first
seed's run; the achievable control frequency is 1 / (p95 of a replanning ``act()`` call), the rate
at which even a slow replanning tick still fits in one control period.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
import shlex
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ..checkpoint import METRICS_FILE, POLICY_FILE, TRAIN_STATE_FILE, load_meta
from ..config import CompareConfig, EnvConfig, RunConfig, load_config, to_dict
from ..data.demos import ensure_dataset
from ..evaluation.rollout import measure_act_latency
from ..evaluation.stats import mean_ci95, wilson_interval
from ..evaluation.sweep import evaluate_policy, format_row
from ..objectives import Objective, build_objective, check_steps
from ..policy import load_policy
from ..training.loop import metrics_step
from ..training.resume import changes_from_saved, listed
from ..training.run_folder import RunFolder
from ..utils.device import cpu_model
from ..utils.io import complete_lines, write_json, write_text
from ..utils.workers import Job, in_process, run_jobs
from .report import markdown, plot

EVAL_CACHE = "eval_rows.json"  # a run's evaluation rows per step budget, with what they were evaluated at

TRAIN_LOG = "train.log"  # a run trained in a worker process writes its output here

def report_path(path: Path, out_dir: Path) -> str:
    """``path`` relative to ``out_dir`` when it lies inside it, else as an absolute path."""
    path, out_dir = Path(path).resolve(), Path(out_dir).resolve()
    return str(path.relative_to(out_dir)) if path.is_relative_to(out_dir) else str(path)


def check_methods(cfg: CompareConfig) -> dict[str, list[Objective]]:
    """Each method's objective options and step budgets, and any given run folders, checked before the
    first run trains (a typo would otherwise surface hours later, in a worker or at evaluation).

    Returns each method's objective per run: a given run's own, else the configured one per seed."""
    objectives: dict[str, list[Objective]] = {}
    for method in cfg.methods:
        given = cfg.checkpoints.get(method, [])
        try:
            per_run = [load_policy(run).objective for run in given]
        except (FileNotFoundError, ValueError) as err:
            raise ValueError(f"checkpoints.{method}: {err}") from None
        if not given:
            try:
                per_run = [build_objective(cfg.objectives[method])] * len(cfg.seeds)
            except (TypeError, ValueError) as err:
                raise ValueError(f"objectives.{method}: {err}") from None
        # unset budgets are the first run's whole sweep, and every run of the method must take them:
        # the table pairs the seeds' rows by step budget
        budgets = method_budgets(cfg, method, per_run)
        field = f"steps.{method}" if cfg.steps.get(method) else f"steps.{method} (unset: the first run's {budgets})"
        for objective in per_run:
            check_steps(field, budgets, objective)
        objectives[method] = per_run
    return objectives


def method_budgets(cfg: CompareConfig, method: str, objectives: list[Objective]) -> list[int]:
    """The step budgets every run of ``method`` is evaluated at: ``steps.<method>``, else the first
    run's objective's sweep."""
    return list(cfg.steps.get(method) or objectives[0].valid_steps())


def plan_runs(
    cfg: CompareConfig, out_dir: Path, objectives: dict[str, list[Objective]]
) -> tuple[dict[str, list[Path]], list[tuple[str, RunConfig, Path]]]:
    """Run folders per method, and the (label, config, folder) of each run still to train.

    Given checkpoints are used as they are; otherwise one run per training seed, in ``out_dir/runs``.
    ``objectives`` is what ``check_methods`` returned: a run that resumes must have been saved with them.
    """
    runs_by_method: dict[str, list[Path]] = {}
    todo = []
    base = to_dict(cfg)
    for method in cfg.methods:
        given = cfg.checkpoints.get(method, [])
        if given:
            runs_by_method[method] = [Path(p) for p in given]
            continue
        runs_by_method[method] = []
        for seed, objective in zip(cfg.seeds, objectives[method], strict=True):
            run_dir = out_dir / "runs" / f"{method}_seed{seed}"
            config = load_config(
                {"env": base["env"], "policy": base["policy"], "objective": dict(base["objectives"][method]),
                 "train": {**base["train"], "seed": seed, "eval_episodes": 0}, "run_dir": str(run_dir)}
            )
            # an interrupted comparison picks up where each run stopped (a finished run resumes at its last step)
            config.train.resume = (run_dir / TRAIN_STATE_FILE).is_file() and not cfg.retrain
            # the comparison owns its runs' folders: one it does not resume (retrain=true, or killed before its
            # first checkpoint) is trained anew there
            config.train.overwrite = not config.train.resume
            if config.train.resume:  # checked here, before any run trains, not when its turn comes
                check_unchanged(run_dir, config)
            runs_by_method[method].append(run_dir)
            todo.append((f"{method} seed {seed}", config, run_dir))
    return runs_by_method, todo


def check_unchanged(run_dir: Path, config: RunConfig) -> None:
    """Refuse to pick up a run trained with other settings than the comparison's now (data, env, budget,
    network, ...): its rows would be reported under settings it was not trained with."""
    meta = load_meta(run_dir / TRAIN_STATE_FILE)
    if "config" not in meta:
        return
    try:
        _, refused = changes_from_saved(meta["config"], config)
    except (ValueError, TypeError, OmegaConfBaseException) as err:
        raise ValueError(f"{run_dir}: its saved config does not load ({err}); retrain=true trains it anew") from None
    if config.train.num_steps < meta.get("step", 0):
        refused["train.num_steps"] = (f"{meta['step']} (trained)", config.train.num_steps)
    if refused:
        raise ValueError(f"{run_dir} was trained with other values of {listed(refused)}; retrain=true trains the runs anew, or "
                         "choose another out")


def train_run(config: RunConfig, run_dir: Path, progress: bool = True) -> None:
    """One training run (a module-level function, so that a worker process can be handed it), holding
    its run folder while it trains."""
    from ..training.trainer import Trainer

    with RunFolder(run_dir):
        Trainer(config, run_dir, progress=progress).fit()


def train_all(todo: list[tuple[str, RunConfig, Path]], jobs: int, progress: bool = True) -> None:
    """Train every planned run, ``jobs`` at a time (each then in its own process, output in ``<run>/train.log``)."""
    if not todo:
        return
    if not in_process(jobs, len(todo)):  # every worker reads the same store: make it once, before they start
        ensure_dataset(todo[0][1].env, progress)
    for _, config, run_dir in todo:
        if not config.train.resume:  # a run trained anew gets a new log; a resumed one's log goes on
            (run_dir / TRAIN_LOG).unlink(missing_ok=True)
    run_jobs(
        [Job(label + (" (resuming)" if config.train.resume else ""), run_dir / TRAIN_LOG, train_run, (config, run_dir))
         for label, config, run_dir in todo],
        jobs, "train (steps, all runs)", progress,
        total=sum(config.train.num_steps for _, config, _ in todo),
        done_so_far=lambda: sum(last_logged_step(run_dir) for _, _, run_dir in todo),
    )


def last_logged_step(run_dir: Path) -> int:
    """The step of a run's last complete metrics record (0 before its first)."""
    steps = map(metrics_step, reversed(complete_lines(run_dir / METRICS_FILE)))
    return next((step for step in steps if step is not None), 0)


def evaluate_run(
    run: Path, env: EnvConfig, steps: list[int], episodes: int, seed_start: int, rows_file: Path | None = None,
    workers: int | None = None, videos: int = 0, video_dir: Path | None = None, cache: bool = True,
    progress: bool = True,
) -> list[dict]:
    """Rollout rows of one run at ``steps``; no latency. Each budget's row is appended to ``rows_file``
    (emptied first) as soon as it is done: how the parent counts progress of a run in a worker. ``videos``
    episodes of the first budget are filmed into ``video_dir``.

    With ``cache``, each row is also kept in the run's ``EVAL_CACHE`` with what it was evaluated at (test
    seeds, env, task, episode length, envs alive at once, the checkpoint's bytes): a budget found there is
    not rolled out again, so a stopped evaluation resumes budget by budget and a second invocation redoes
    nothing. Without it (a run folder the user gave) nothing is written into the run."""
    policy = load_policy(run)
    spec = env.spec()
    cache_file = run / EVAL_CACHE
    saved: dict = {}
    if cache:  # a given checkpoint may be a file, not a folder: only runs made here are hashed and cached
        key = {"episodes": episodes, "seed_start": seed_start, "env": spec.id, "max_episode_steps": spec.max_episode_steps,
               "rollout_envs": spec.rollout_envs,
               "checkpoint_sha256": hashlib.sha256((run / POLICY_FILE).read_bytes()).hexdigest()}
    if cache and cache_file.is_file():
        try:
            found = json.loads(cache_file.read_text())
        except json.JSONDecodeError:  # written atomically, so only a hand-edited file; evaluate again
            found = {}
        if found.get("key") == key:
            saved = found["budgets"]
    if rows_file is not None:
        rows_file.parent.mkdir(parents=True, exist_ok=True)
        rows_file.write_text("")
    reused = [k for k in steps if str(k) in saved and saved[str(k)]["videos"] >= (videos if k == steps[0] else 0)]
    todo = [k for k in steps if k not in reused]
    print(f"evaluating {run} at steps {todo} on {episodes} test seeds" if todo else f"{run}: nothing to evaluate", flush=True)
    if reused:
        print(f"{run}: steps {reused} evaluated before on these test seeds and checkpoint; rows reused", flush=True)
    rows = []
    for k in steps:
        film = videos if k == steps[0] and video_dir is not None else 0
        if k in reused:
            rows.append(saved[str(k)]["row"])
        else:
            rows += evaluate_policy(policy, spec, [k], episodes, seed_start, latency_calls=0, n_videos=film,
                                    video_dir=video_dir if film else None, progress=progress, workers=workers)
            if not progress:
                print(format_row(rows[-1]), flush=True)  # evaluate_policy prints it only with progress
            saved[str(k)] = {"row": rows[-1], "videos": film}
            if cache:
                write_json(cache_file, {"key": key, "budgets": saved})
        if rows_file is not None:
            with open(rows_file, "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
    return rows


def evaluate_all(
    runs_by_method: dict[str, list[Path]], cfg: CompareConfig, out_dir: Path, progress: bool = True
) -> list[dict]:
    """Every run at its method's step budgets, ``cfg.jobs`` at a time; then ``act()`` latency on each
    method's first run, measured alone so that no other process shares the cores while it is timed."""
    calls, rows_files, n_rows = [], [], 0
    for method, runs in runs_by_method.items():
        budgets = method_budgets(cfg, method, [load_policy(runs[0]).objective])
        for i, run in enumerate(runs):
            log = out_dir / "logs" / f"evaluate_{method}_{i}.log"
            rows_files.append(log.with_suffix(".jsonl"))
            n_rows += len(budgets)
            calls.append(Job(f"{method} run {i}", log, evaluate_run,
                             (run, cfg.env, list(budgets), cfg.episodes, cfg.seed_start, rows_files[-1],
                              cfg.env.rollout_workers, 0, None, run.resolve().is_relative_to(out_dir.resolve()))))
    for f in rows_files:
        f.unlink(missing_ok=True)  # an earlier evaluation's rows would count as progress
    results = run_jobs(calls, cfg.jobs, "evaluate (step budgets, all runs)", progress, total=n_rows,
                       done_so_far=lambda: sum(len(complete_lines(f)) for f in rows_files))
    rows, k = [], 0
    for method, runs in runs_by_method.items():
        per_seed, k = results[k:k + len(runs)], k + len(runs)
        if cfg.latency_calls:
            policy = load_policy(runs[0])
            print(f"[{method}] act() latency at batch 1, {cfg.latency_calls} calls per step budget, on {runs[0]}")
            for row in per_seed[0]:
                row.update(measure_act_latency(policy, cfg.env.spec(), row["steps"], n_calls=cfg.latency_calls, seed=cfg.seed_start))
        rows.extend(aggregate(method, per_seed))
    return rows


def aggregate(method: str, per_seed_rows: list[list[dict]]) -> list[dict]:
    """One table row per step budget, across the training seeds' evaluation rows."""
    by_steps = [{r["steps"]: r for r in seed_rows} for seed_rows in per_seed_rows]
    if any(set(b) != set(by_steps[0]) for b in by_steps):
        raise ValueError(f"{method}: expected every training seed evaluated at the same step budgets, got "
                         f"{[sorted(b) for b in by_steps]}")
    rows = []
    for first in per_seed_rows[0]:
        same = [b[first["steps"]] for b in by_steps]
        scores = [r["score"] for r in same]
        successes = sum(round(r["success_rate"] * r["episodes"]) for r in same)
        episodes = sum(r["episodes"] for r in same)
        low, high = wilson_interval(successes, episodes)
        rows.append(
            {
                "method": method,
                "steps": first["steps"],
                "score_mean": float(np.mean(scores)),
                "score_ci95": mean_ci95(scores),  # None for one seed
                "scores_per_seed": scores,
                "seeds": len(scores),
                "success_rate": successes / episodes,
                "success_ci95": [low, high],
                "episodes": episodes,
                "act_median_ms": first.get("act_median_ms"),
                "act_p95_ms": first.get("act_p95_ms"),
                "replan_median_ms": first.get("replan_median_ms"),
                "replan_p95_ms": first.get("replan_p95_ms"),
                "control_hz": 1000.0 / first["replan_p95_ms"] if first.get("replan_p95_ms") else None,
            }
        )
    return rows


def machine() -> dict:
    """Where the report was made: rollouts and ``act()`` latency run on the CPU, latency in this process."""
    return {"latency_device": "cpu", "latency_torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "processor": platform.processor() or platform.machine(), "cpu": cpu_model()}


def hydra_string(value: str) -> str:
    """``value`` as a string in a hydra override: as it is when plain, else quoted, so that ``=``, ``,``
    or ``]`` in a path stay in it."""
    if re.fullmatch(r"[\w./@:%+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def evaluate_command(runs_by_method: dict[str, list[Path]], out_dir: Path, overrides: list[str] | None) -> str:
    """The command that evaluates runs trained with ``evaluate=false``: the user's other overrides (when
    known), this output folder, ``evaluate=true`` and the runs as ``checkpoints.<method>``."""
    replaced = ("evaluate", "out", "checkpoints")

    def key(override: str) -> str:  # "++checkpoints.x=[...]", "~out" -> "checkpoints", "out"
        return override.lstrip("~+").split("=", 1)[0].split(".", 1)[0]

    kept = [o for o in overrides or [] if key(o) not in replaced]
    built_in = CompareConfig().checkpoints  # keys compare.yaml has; any other needs hydra's "+"
    given = [f"{'' if m in built_in else '+'}checkpoints.{m}=[{','.join(hydra_string(str(Path(r).resolve())) for r in runs)}]"
             for m, runs in runs_by_method.items()]
    words = ["python", "-m", "shortcut_policy.compare", *kept, f"out={hydra_string(str(Path(out_dir).resolve()))}",
             "evaluate=true", *given]
    return " ".join(shlex.quote(w) for w in words) + ("" if overrides is not None else "  (plus the overrides used here)")


def compare(
    cfg: CompareConfig | DictConfig, out_dir: str | Path, progress: bool = True, overrides: list[str] | None = None
) -> list[Path]:
    """Train (or load) every method, then evaluate each at its step budgets and write the report.

    ``overrides``: the command line's, echoed in the command printed after ``evaluate=false``.
    Returns the report's files, or the run folders when ``evaluate`` is false.
    """
    if not isinstance(cfg, CompareConfig):
        cfg = load_config(cfg, CompareConfig)  # names and types checked before anything runs
    spec = cfg.env.spec()  # a missing simulator fails now, with the pip command
    out_dir = Path(out_dir)
    print(f"comparison folder: {out_dir.resolve()}")
    start = time.perf_counter()
    objectives = check_methods(cfg)
    runs_by_method, todo = plan_runs(cfg, out_dir, objectives)
    train_all(todo, cfg.jobs, progress)
    if not cfg.evaluate:
        print(f"trained in {time.perf_counter() - start:.0f}s (evaluate=false); to evaluate these runs:")
        print("  " + evaluate_command(runs_by_method, out_dir, overrides))
        return [run for runs in runs_by_method.values() for run in runs]
    rows = evaluate_all(runs_by_method, cfg, out_dir, progress)
    table = markdown(rows)
    # runs inside the report folder are recorded relative to it, so the folder can be moved or shared
    runs_json = {method: [report_path(run, out_dir) for run in runs] for method, runs in runs_by_method.items()}
    options = {method: [dataclasses.asdict(o.config) for o in per_run] for method, per_run in objectives.items()}
    paths = [
        write_text(out_dir / "compare.md", table),
        write_json(out_dir / "compare.json", {"rows": rows, "runs": runs_json, "seconds": time.perf_counter() - start,
                                              "objectives": options, "config": to_dict(cfg), "machine": machine()}),
        *plot(out_dir, rows, f"{spec.label} · {cfg.policy.backbone}", spec),
    ]
    print(table)
    print(f"done in {time.perf_counter() - start:.0f}s; wrote:")
    for path in paths:
        print(f"  {path}")
    return paths
