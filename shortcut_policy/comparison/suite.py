"""The comparison on a suite of tasks (``python -m shortcut_policy.suite``): every task x method x training
seed trained on the task's expert demonstrations with one backbone and budget, rolled out on the same test
seeds, and reported per task and per task group (the env's ``task_groups``; Meta-World: difficulty).

Resumable at every stage: demonstrations already made are reused, a run already trained resumes (a
finished one at its last step, so it only loads), and a run already evaluated at the same budgets, test
seeds and checkpoint keeps its rows (``<run>/suite_eval.json``). So the same command, stopped and started
again, picks up where it stopped. Training and evaluation run ``jobs`` at a time; ``act()`` latency is
measured afterwards, alone, once per method on the first task's first run (the network, the observation
size and the chunk do not change from task to task).

Written to the output folder: ``suite.md`` (the tables), ``suite.json``, ``group_<group>.png`` (success
against sampling steps per method, one plot per group), ``timings.jsonl`` (each invocation's phases:
wall-clock and CPU seconds), ``<task>/videos/`` and ``<task>/runs/``.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from ..config import CompareConfig, SuiteConfig, load_config, to_dict
from ..data.demos import ensure_dataset
from ..data.replay_buffer import read_store_meta
from ..envs import get_env_spec
from ..evaluation.rollout import measure_act_latency
from ..evaluation.stats import wilson_interval
from ..policy import load_policy
from ..utils.io import complete_lines, write_json, write_text
from ..utils.workers import Job, run_jobs
from .runs import aggregate, check_methods, evaluate_run, machine, method_budgets, plan_runs, train_all


def task_config(cfg: SuiteConfig, task: str) -> CompareConfig:
    """The comparison of one task: the suite's settings with ``env.task`` set."""
    base = to_dict(cfg)
    for key in ("tasks", "videos"):
        base.pop(key)
    base["env"]["task"] = task
    return load_config(base, CompareConfig)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker pools are joined before it is read)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Timer:
    """Each phase's wall-clock and CPU seconds, appended to ``timings.jsonl`` as it ends."""

    def __init__(self, path: Path, jobs: int) -> None:
        self.path, self.jobs, self.phases = path, jobs, {}

    def __call__(self, phase: str, fn, *args, **kwargs):
        wall, cpu = time.perf_counter(), cpu_seconds()
        out = fn(*args, **kwargs)
        record = {"phase": phase, "wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds() - cpu, "jobs": self.jobs,
                  "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        self.phases[phase] = record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return out


def make_demos(configs: dict[str, CompareConfig], progress: bool) -> dict[str, dict]:
    """Each task's expert store (made when missing): its path, the expert's success and the time it took."""
    out = {}
    for task, c in configs.items():
        path = ensure_dataset(c.env, progress)
        attrs, n_episodes = read_store_meta(path)
        out[task] = {"store": str(path), "episodes": n_episodes, "expert_success_rate": attrs.get("expert_success_rate"),
                     "expert_attempts": attrs.get("expert_attempts"), "seconds": attrs.get("seconds"),
                     "mean_episode_length": attrs.get("mean_episode_length"), "action_noise": attrs.get("action_noise", 0.0)}
    return out


def evaluate_suite(
    cfg: SuiteConfig, configs: dict[str, CompareConfig], runs: dict[str, dict[str, list[Path]]], out_dir: Path,
    progress: bool,
) -> dict[str, list[dict]]:
    """Every run of every task at its method's budgets (``cfg.jobs`` at a time); latency alone afterwards.
    Returns each task's table rows (``aggregate``: one per method and budget)."""
    budgets = {m: method_budgets(cfg, m, [load_policy(runs[cfg.tasks[0]][m][0]).objective]) for m in cfg.methods}
    jobs, rows_files, slots = [], [], []
    for task, by_method in runs.items():
        for method, method_runs in by_method.items():
            for i, run in enumerate(method_runs):
                log = out_dir / "logs" / f"evaluate_{task}_{method}_{i}.log"
                rows_files.append(log.with_suffix(".jsonl"))
                rows_files[-1].parent.mkdir(parents=True, exist_ok=True)
                rows_files[-1].write_text("")
                film = cfg.videos if (method == cfg.methods[0] and i == 0) else 0
                jobs.append(Job(f"{task} {method} run {i}", log, evaluate_run,
                                (run, configs[task].env, budgets[method], cfg.episodes, cfg.seed_start, rows_files[-1],
                                 configs[task].env.rollout_workers, film, out_dir / task / "videos")))
                slots.append((task, method))
    total = sum(len(budgets[m]) for _, m in slots)
    results = run_jobs(jobs, cfg.jobs, "evaluate (step budgets, all runs)", progress, total=total,
                       done_so_far=lambda: sum(len(complete_lines(f)) for f in rows_files))
    per_seed: dict[str, dict[str, list[list[dict]]]] = {}
    for (task, method), rows in zip(slots, results):
        per_seed.setdefault(task, {}).setdefault(method, []).append(rows)
    latency = {}
    if cfg.latency_calls:
        first = cfg.tasks[0]
        for method in cfg.methods:
            policy = load_policy(runs[first][method][0])
            print(f"[{method}] act() latency at batch 1, {cfg.latency_calls} calls per step budget, on {runs[first][method][0]}")
            latency[method] = {k: measure_act_latency(policy, configs[first].env.spec(), k, n_calls=cfg.latency_calls,
                                                      seed=cfg.seed_start) for k in budgets[method]}
    table: dict[str, list[dict]] = {}
    for task in cfg.tasks:
        table[task] = []
        for method in cfg.methods:
            for seed_rows in per_seed[task][method][:1]:  # latency rides on the first seed's rows, as in compare
                for row in seed_rows:
                    row.update(latency.get(method, {}).get(row["steps"], {}))
            table[task].extend(aggregate(method, per_seed[task][method]))
    return table


def group_rows(cfg: SuiteConfig, table: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Per task group: each method and budget's success pooled over the group's tasks (every task has the
    same episodes and seeds, so the pooled rate is the mean of the tasks' rates), with a 95% Wilson interval."""
    spec = get_env_spec(cfg.env.name)
    groups = {g: [t for t in members if t in cfg.tasks] for g, members in spec.task_groups.items()}
    grouped = {t for members in groups.values() for t in members}
    groups = {g: members for g, members in groups.items() if members}
    if any(t not in grouped for t in cfg.tasks):
        groups["other"] = [t for t in cfg.tasks if t not in grouped]
    out = {}
    for group, tasks in groups.items():
        out[group] = []
        for first in table[tasks[0]]:
            same = [next(r for r in table[t] if r["method"] == first["method"] and r["steps"] == first["steps"]) for t in tasks]
            successes = sum(round(r["success_rate"] * r["episodes"]) for r in same)
            episodes = sum(r["episodes"] for r in same)
            low, high = wilson_interval(successes, episodes)
            out[group].append({"method": first["method"], "steps": first["steps"], "tasks": tasks,
                               "success_rate": successes / episodes, "success_ci95": [low, high], "episodes": episodes,
                               "per_task": [r["success_rate"] for r in same], "seeds": first["seeds"],
                               "replan_median_ms": first.get("replan_median_ms"), "replan_p95_ms": first.get("replan_p95_ms")})
    return out


def pct(row: dict) -> str:
    low, high = row["success_ci95"]
    return f"{row['success_rate']:.0%} [{low:.0%}, {high:.0%}]"


def markdown(cfg: SuiteConfig, demos: dict[str, dict], table: dict[str, list[dict]], groups: dict[str, list[dict]]) -> str:
    """The suite's tables: headline per group, then each group's tasks, latency, and the expert's demonstrations."""
    methods = cfg.methods
    budgets = sorted({r["steps"] for rows in table.values() for r in rows})
    fewest = {m: min(r["steps"] for r in table[cfg.tasks[0]] if r["method"] == m) for m in methods}
    most = {m: max(r["steps"] for r in table[cfg.tasks[0]] if r["method"] == m) for m in methods}
    seeds = table[cfg.tasks[0]][0]["seeds"]
    lines = [f"Success rate (95% Wilson interval, pooled over {seeds} training seed(s) x {cfg.episodes} test episodes"
             " per task; a group pools its tasks).", "", "## Per group", ""]
    heads = [f"{m} @ {fewest[m]}" for m in methods] + [f"{m} @ {most[m]}" for m in methods if most[m] != fewest[m]]
    lines += ["| group (tasks) | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for group, rows in groups.items():
        get = {(r["method"], r["steps"]): r for r in rows}
        cells = [pct(get[m, fewest[m]]) for m in methods] + [pct(get[m, most[m]]) for m in methods if most[m] != fewest[m]]
        lines.append(f"| {group} ({len(rows[0]['tasks'])}) | " + " | ".join(cells) + " |")
    for group, rows in groups.items():
        lines += ["", f"## {group}", "", "| task | method | " + " | ".join(f"{k} steps" for k in budgets) + " |",
                  "|---|---|" + "---:|" * len(budgets)]
        for task in rows[0]["tasks"] + ["**group**"]:
            source = rows if task == "**group**" else table[task]
            for m in methods:
                get = {r["steps"]: r for r in source if r["method"] == m}
                lines.append(f"| {task} | {m} | " + " | ".join(pct(get[k]) if k in get else "-" for k in budgets) + " |")
    first = table[cfg.tasks[0]]
    if any(r.get("replan_median_ms") is not None for r in first):
        lines += ["", f"## Latency of a replanning act() call at batch 1 (median / p95 ms; on {cfg.tasks[0]}'s first run, the "
                  "same network for every task; the calls between replans take an action from the queue)", "",
                  "| method | " + " | ".join(f"{k} steps" for k in budgets) + " |", "|---|" + "---:|" * len(budgets)]
        for m in methods:
            get = {r["steps"]: r for r in first if r["method"] == m}
            lines.append(f"| {m} | " + " | ".join(f"{get[k]['replan_median_ms']:.2f} / {get[k]['replan_p95_ms']:.2f}" if k in get
                                                  else "-" for k in budgets) + " |")
        base = next(r for r in first if r["method"] == methods[0] and r["steps"] == fewest[methods[0]])
        for m in methods[1:]:
            other = next(r for r in first if r["method"] == m and r["steps"] == most[m])
            lines.append(f"\n{m} at {most[m]} steps takes {other['replan_median_ms'] / base['replan_median_ms']:.0f}x the median "
                         f"replanning latency of {methods[0]} at {fewest[methods[0]]} step(s).")
    lines += ["", "## Expert demonstrations", "", "| task | kept episodes | expert success (attempts) | mean length | seconds |",
              "|---|---:|---:|---:|---:|"]
    for task, d in demos.items():
        rate = f"{d['expert_success_rate']:.0%} ({d['expert_attempts']})" if d["expert_success_rate"] is not None else "-"
        length = f"{d['mean_episode_length']:.0f}" if d["mean_episode_length"] is not None else "-"
        secs = f"{d['seconds']:.1f}" if d["seconds"] is not None else "-"
        lines.append(f"| {task} | {d['episodes']} | {rate} | {length} | {secs} |")
    return "\n".join(lines) + "\n"


def plot_groups(out_dir: Path, cfg: SuiteConfig, groups: dict[str, list[dict]]) -> list[Path]:
    """One figure per group: success rate (95% Wilson) against sampling steps, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..utils.io import atomic_write

    paths = []
    for group, rows in groups.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in cfg.methods:
            mine = [r for r in rows if r["method"] == m]
            x = [r["steps"] for r in mine]
            y = np.array([r["success_rate"] for r in mine])
            # Wilson bounds at 0/n or n/n can sit a rounding error inside the rate
            err = np.clip(np.array([[y_ - r["success_ci95"][0], r["success_ci95"][1] - y_] for y_, r in zip(y, mine)]).T, 0, None)
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=m)
        ax.set(xscale="log", xlabel="sampling steps (NFE)", ylabel="success rate", ylim=(-0.02, 1.02),
               title=f"{cfg.env.name} · {group} ({len(rows[0]['tasks'])} tasks)")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        name = "group_" + group.replace(" ", "_") + ".png"
        paths.append(atomic_write(out_dir / name, lambda tmp: fig.savefig(tmp, dpi=120, format="png")))
        plt.close(fig)
    return paths


def run_suite(cfg: SuiteConfig | DictConfig, out_dir: str | Path, progress: bool = True) -> list[Path]:
    """Demos, training, evaluation and the report of every task x method x seed; returns the files written."""
    if not isinstance(cfg, SuiteConfig):
        cfg = load_config(cfg, SuiteConfig)  # names, types, tasks and the simulator checked before anything runs
    cfg.env.spec()  # a missing simulator fails now, with the pip command
    out_dir = Path(out_dir)
    print(f"suite folder: {out_dir.resolve()}")
    print(f"{len(cfg.tasks)} tasks x {len(cfg.methods)} methods x {len(cfg.seeds)} training seeds = "
          f"{len(cfg.tasks) * len(cfg.methods) * len(cfg.seeds)} runs, {cfg.jobs} at a time")
    start = time.perf_counter()
    timer = Timer(out_dir / "timings.jsonl", cfg.jobs)
    configs = {task: task_config(cfg, task) for task in cfg.tasks}
    objectives = check_methods(configs[cfg.tasks[0]])  # the same methods, options and budgets for every task
    runs, todo = {}, []
    for task, c in configs.items():
        runs[task], task_todo = plan_runs(c, out_dir / task, objectives)
        todo += [(f"{task} {label}", config, run) for label, config, run in task_todo]
    demos = timer("demos", make_demos, configs, progress)
    timer("train", train_all, todo, cfg.jobs, progress)
    if not cfg.evaluate:
        print(f"trained in {time.perf_counter() - start:.0f}s (evaluate=false); the same command with evaluate=true evaluates them")
        return [run for by_method in runs.values() for rs in by_method.values() for run in rs]
    table = timer("evaluate", evaluate_suite, cfg, configs, runs, out_dir, progress)
    groups = group_rows(cfg, table)
    text = markdown(cfg, demos, table, groups)
    paths = [
        write_text(out_dir / "suite.md", text),
        write_json(out_dir / "suite.json", {
            "groups": groups, "tasks": table, "demos": demos, "timings_this_invocation": timer.phases,
            "runs": {t: {m: [str(Path(r).relative_to(out_dir)) for r in rs] for m, rs in by.items()} for t, by in runs.items()},
            "config": to_dict(cfg), "machine": machine(), "seconds": time.perf_counter() - start,
        }),
        *plot_groups(out_dir, cfg, groups),
    ]
    print(text)
    print(f"done in {time.perf_counter() - start:.0f}s; wrote:")
    for path in paths + [out_dir / "timings.jsonl"]:
        print(f"  {path}")
    return paths
