"""One network, any budget: score, success and jerk from 1 to 128 steps, per variant over training seeds.

    python benchmarks/any_budget.py --variant "default=RUN_S0,RUN_S1,RUN_S2" \\
        --variant "flow rows uniform=RUN_A0,RUN_A1,RUN_A2" [--baseline default] \\
        [--steps 1 2 4 8 16 32 64 128] [--episodes 50] --out docs/results/any_budget/push_t.json

Each run is evaluated at every budget on test seeds 0..episodes-1 (``evaluate_policy``, no latency calls,
no videos); its rows are cached in ``<run>/eval_any_budget.json`` and reused when they cover the same
budgets and episodes for the same checkpoint. Per variant and budget: the score's mean over seeds with
its 95% t interval, the success rate pooled over seeds x episodes, and the mean jerk of the executed
actions. Each variant is paired with the baseline by training seed (run i with run i). Then the
any-budget criteria of issue 39, each stated as met or not:
  * the 1-step score is >= 0.88;
  * no budget's score is below the 1-step score by more than 0.02;
  * the best many-step score is >= 0.895 (shortcut's 128-step score at this budget);
  * the 1-step success rate is within 5 points of the best budget's;
  * the 1-step jerk is within 1.5x of the 8-step jerk.
Prints a table, writes the JSON (``--out``) and a plot of score, success and jerk against steps
(``--out`` with ``.png``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.checkpoint import POLICY_FILE
from shortcut_policy.evaluate import trained_env
from shortcut_policy.evaluation.stats import mean_ci95
from shortcut_policy.evaluation.sweep import evaluate_policy
from shortcut_policy.policy import load_policy
from shortcut_policy.utils.device import cpu_model
from shortcut_policy.utils.io import atomic_write, write_json

CACHE = "eval_any_budget.json"
TARGETS = {"one_step_score": 0.88, "largest_fall": 0.02, "best_many_step": 0.895, "success_gap": 0.05, "jerk_ratio": 1.5}


def evaluate_run(run: Path, steps: list[int], episodes: int) -> dict:
    """The run's rows at ``steps`` (cached beside its checkpoint, keyed by the file's size and time)."""
    file = run / POLICY_FILE
    stamp = {"size": file.stat().st_size, "mtime_ns": file.stat().st_mtime_ns}
    cache = run / CACHE
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("stamp") == stamp and saved.get("episodes") == episodes and set(steps) <= {r["steps"] for r in saved["rows"]}:
            return saved
    policy = load_policy(run)
    spec = trained_env(file, policy).spec()
    rows = evaluate_policy(policy, spec, steps, episodes, latency_calls=0, progress=True)
    train = policy.meta.get("config", {}).get("train", {})
    saved = {"run": str(run), "stamp": stamp, "episodes": episodes, "step": policy.meta.get("step"),
             "batch_size": train.get("batch_size"), "objective": policy.contract.objective, "rows": rows}
    write_json(cache, saved)
    return saved


def summarize(variant: dict[str, dict], steps: list[int]) -> dict:
    """Per budget: the seeds' scores, mean and interval; success pooled; jerk mean over seeds."""
    out = {}
    for k in steps:
        rows = [{r["steps"]: r for r in run["rows"]}[k] for run in variant.values()]
        scores = [r["score"] for r in rows]
        successes = sum(round(r["success_rate"] * r["episodes"]) for r in rows)
        episodes = sum(r["episodes"] for r in rows)
        jerks = [r["jerk"] for r in rows if r.get("jerk") is not None]
        out[k] = {"scores": scores, "score": float(np.mean(scores)), "score_ci95": mean_ci95(scores),
                  "success_rate": successes / episodes, "successes": successes, "episodes": episodes,
                  "jerks": jerks, "jerk": float(np.mean(jerks)) if jerks else None}
    return out


def criteria(summary: dict, steps: list[int]) -> dict:
    one = summary[1]
    many = [k for k in steps if k > 1]
    fall = max(one["score"] - summary[k]["score"] for k in many)
    best_success = max(summary[k]["success_rate"] for k in steps)
    result = {
        "one_step_score": {"value": one["score"], "met": one["score"] >= TARGETS["one_step_score"]},
        "largest_fall": {"value": fall, "met": fall <= TARGETS["largest_fall"]},
        "best_many_step": {"value": max(summary[k]["score"] for k in many),
                           "met": max(summary[k]["score"] for k in many) >= TARGETS["best_many_step"]},
        "success_gap": {"value": best_success - one["success_rate"], "met": best_success - one["success_rate"] <= TARGETS["success_gap"]},
    }
    if one["jerk"] is None or not summary[8]["jerk"]:
        raise ValueError("jerk: the rows hold no jerk of the executed actions; evaluate them again with today's code")
    ratio = one["jerk"] / summary[8]["jerk"]
    result["jerk_ratio"] = {"value": ratio, "met": ratio <= TARGETS["jerk_ratio"]}
    return result


def paired(variant: dict, baseline: dict, steps: list[int]) -> dict:
    """Variant minus baseline, run i against run i (the same training seed), per budget."""
    out = {}
    for k in steps:
        diffs = [{r["steps"]: r for r in a["rows"]}[k]["score"] - {r["steps"]: r for r in b["rows"]}[k]["score"]
                 for a, b in zip(variant.values(), baseline.values())]
        out[k] = {"diffs": diffs, "mean": float(np.mean(diffs)), "ci95": mean_ci95(diffs)}
    return out


def update_records(path: Path, task: str, result: dict, default: str | None) -> Path:
    """Write one record per (task, variant, budget) into ``path`` (docs/results/benchmarks.json), replacing the
    records of the same task, objective label and budget; the others are kept as they were."""
    records = json.loads(path.read_text()) if path.is_file() else []
    new = []
    for name, v in result["variants"].items():
        runs = list(v["runs"].values())
        seen = {r["step"] * r["batch_size"] for r in runs if r.get("step") and r.get("batch_size")}
        samples_seen = seen.pop() if len(seen) == 1 else None  # None where the runs differ
        for k, row in v["by_steps"].items():
            new.append({"task": task, "objective": name, "objective_options": runs[0]["objective"], "steps": int(k),
                        "score": row["score"], "score_ci95": row["score_ci95"], "success": row["success_rate"],
                        "jerk": row["jerk"], "seeds": len(runs), "episodes": row["episodes"],
                        "samples_seen": samples_seen, "device": result["machine"],
                        "date": result["date"], "commit": result["commit"], "page": result.get("page"),
                        **({"default": True} if name == default else {})})
    keys = {(r["task"], r["objective"], r["steps"]) for r in new}
    kept = [r for r in records if (r.get("task"), r.get("objective"), r.get("steps")) not in keys]
    return write_json(path, kept + new)


def plot(path: Path, summaries: dict[str, dict], steps: list[int], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, (name, summary) in enumerate(summaries.items()):
        colour = f"C{i}"
        axes[0].plot(steps, [summary[k]["score"] for k in steps], "o-", color=colour, label=name)
        for k in steps:  # each training seed's score, so that two seeds' spread is seen rather than a t interval
            axes[0].plot([k] * len(summary[k]["scores"]), summary[k]["scores"], ".", color=colour, alpha=0.4)
        axes[1].plot(steps, [summary[k]["success_rate"] for k in steps], "s-", color=colour, label=name)
        axes[2].plot(steps, [summary[k]["jerk"] for k in steps], "^-", color=colour, label=name)
    for ax, label in zip(axes, ["score (mean over seeds; dots: each seed)", "success rate (pooled over seeds)",
                                "jerk of executed actions (action units)"]):
        ax.set(xscale="log", xlabel="sampling steps (NFE)", ylabel=label)
        ax.set_xticks(steps, [str(s) for s in steps])
    axes[0].set_ylim(0, 1.02)
    axes[1].set_ylim(0, 1.02)
    axes[2].set_yscale("log")
    axes[0].set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def table(summaries: dict[str, dict], steps: list[int]) -> str:
    lines = ["| variant | " + " | ".join(str(k) for k in steps) + " |", "|---|" + "---:|" * len(steps)]
    for name, summary in summaries.items():
        lines.append(f"| {name}: score | " + " | ".join(
            f"{summary[k]['score']:.3f}" + (f" ± {summary[k]['score_ci95']:.3f}" if summary[k]["score_ci95"] is not None else "")
            for k in steps) + " |")
        lines.append(f"| {name}: success | " + " | ".join(f"{summary[k]['success_rate']:.0%}" for k in steps) + " |")
        lines.append(f"| {name}: jerk | " + " | ".join(
            f"{summary[k]['jerk']:.1f}" if summary[k]["jerk"] is not None else "-" for k in steps) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=RUN[,RUN...] (runs in training-seed order)")
    parser.add_argument("--baseline", default=None, help="the variant the others are paired with (default: the first)")
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64, 128])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--title", default="Push-T")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--records", type=Path, default=None, help="docs/results/benchmarks.json: add one record per variant and budget")
    parser.add_argument("--task", default="push_t", help="the task the records name")
    parser.add_argument("--default", default=None, help="the variant that is the library's default (its records say so)")
    parser.add_argument("--page", default=None, help="the results page the records point to")
    args = parser.parse_args()
    if 1 not in args.steps or 8 not in args.steps or len(set(args.steps)) < 2:
        parser.error(f"--steps: the criteria compare every budget with 1 step, and 1 step's jerk with 8 steps'; got {args.steps}")
    variants: dict[str, dict[str, dict]] = {}
    for spec in args.variant:
        name, _, runs = spec.rpartition("=")  # the name may hold "=" (an option), the run paths not
        paths = [Path(r) for r in runs.split(",") if r]
        if not name or not paths:
            parser.error(f"--variant: expected NAME=RUN[,RUN...], got {spec!r}")
        for p in paths:
            if not (p / POLICY_FILE).is_file():
                parser.error(f"--variant {name}: {p} holds no {POLICY_FILE}")
        variants[name] = {str(p): None for p in paths}
    baseline = args.baseline or next(iter(variants))
    if baseline not in variants:
        parser.error(f"--baseline: expected one of {list(variants)}, got {baseline!r}")
    for name, runs in variants.items():  # paired by training seed: run i with the baseline's run i
        if len(runs) != len(variants[baseline]):
            parser.error(f"--variant {name}: {len(runs)} runs against the baseline's {len(variants[baseline])}; pair them seed by seed")
    for name, runs in variants.items():
        for run in runs:
            print(f"{name}: {run}")
            runs[run] = evaluate_run(Path(run), args.steps, args.episodes)
    summaries = {name: summarize(runs, args.steps) for name, runs in variants.items()}
    result = {
        "command": "python benchmarks/any_budget.py " + " ".join(f"--variant '{v}'" for v in args.variant),
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, no GPU, torch {torch.__version__} (evaluated at "
                   f"{torch.get_num_threads()} threads)",
        "episodes": args.episodes, "steps": args.steps, "baseline": baseline, "targets": TARGETS,
        "variants": {
            name: {"runs": {run: {"step": v["step"], "batch_size": v.get("batch_size"), "objective": v["objective"], "rows": [
                {k: r[k] for k in ("steps", "episodes", "score", "success_rate", "jerk")} for r in v["rows"] if r["steps"] in args.steps]}
                for run, v in runs.items()},
                   "by_steps": summaries[name], "criteria": criteria(summaries[name], args.steps),
                   **({"paired_with_baseline": paired(runs, variants[baseline], args.steps)} if name != baseline else {})}
            for name, runs in variants.items()
        },
    }
    print(table(summaries, args.steps))
    for name, v in result["variants"].items():
        met = ", ".join(f"{k} {c['value']:.3f} {'met' if c['met'] else 'NOT met'}" for k, c in v["criteria"].items())
        print(f"{name}: {met}")
        if "paired_with_baseline" in v:
            print("  minus " + baseline + ": " + ", ".join(
                f"{k}: {p['mean']:+.3f}" + (f" ± {p['ci95']:.3f}" if p["ci95"] is not None else "")
                for k, p in v["paired_with_baseline"].items()))
    result["page"] = args.page
    print(f"wrote {write_json(args.out, result)}")
    if args.records:
        print(f"wrote {update_records(args.records, args.task, result, args.default)}")
    print(f"wrote {plot(args.out.with_suffix('.png'), summaries, args.steps, args.title)}")


if __name__ == "__main__":
    main()
