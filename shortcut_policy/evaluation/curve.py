"""A run's learning curve: the rollout evaluations it makes along the way (``train.eval_every``), against
the samples it has seen and the wall time it has trained, with Diffusion Policy's two summaries.

One checkpoint's score is noisy, and the best of many is picked on the very test seeds it is scored on:
Diffusion Policy reports both the best evaluated checkpoint and the mean over the last k, and so does
this module, k stated. A run stopped and resumed keeps one curve; ``resumes.jsonl`` says at which
steps it was resumed, and the plot marks them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.io import atomic_write, complete_lines, write_json

CURVE_JSON = "curve.json"
CURVE_PLOT = "curve.png"
METRICS = ("score", "success", "jerk")


def eval_key(metric: str, steps: int) -> str:
    """The metrics.jsonl key of one periodic evaluation figure, e.g. ``eval_score_1step``."""
    return f"eval_{metric}_{steps}step"


def eval_record(row: dict[str, Any]) -> dict[str, float]:
    """One sweep row (``evaluate_policy``) as the keys a periodic evaluation logs."""
    k = row["steps"]
    record = {eval_key("score", k): row["score"], eval_key("success", k): row["success_rate"]}
    if row.get("jerk") is not None:
        record[eval_key("jerk", k)] = row["jerk"]
    return record


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete JSON records of a JSON-lines file (none if it does not exist)."""
    records = []
    for line in complete_lines(path):
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def evaluations(records: Sequence[dict[str, Any]], steps: int) -> list[dict[str, Any]]:
    """The records of metrics.jsonl that hold a periodic evaluation at ``steps``, in step order."""
    key = eval_key("score", steps)
    return sorted((r for r in records if key in r), key=lambda r: r["step"])


def summarize(records: Sequence[dict[str, Any]], steps: int, last_k: int) -> dict[str, Any] | None:
    """Diffusion Policy's two summaries of the evaluations at ``steps``: the best evaluated checkpoint (by
    score; its success beside it) and the mean score and success of the last ``last_k`` evaluations (fewer
    when fewer were made, and said). None when nothing was evaluated at ``steps``."""
    rows = evaluations(records, steps)
    if not rows:
        return None
    score, success = eval_key("score", steps), eval_key("success", steps)
    best = max(rows, key=lambda r: (r[score], -r["step"]))  # the earliest of equal scores
    last = rows[-last_k:]
    return {
        "steps": steps,
        "evaluations": len(rows),
        "best": {"score": best[score], "success": best.get(success), "step": best["step"], "samples": best.get("samples")},
        "last_k": {"k": len(last), "asked_k": last_k, "score": float(np.mean([r[score] for r in last])),
                   "success": float(np.mean([r[success] for r in last])) if all(success in r for r in last) else None,
                   "from_step": last[0]["step"], "to_step": last[-1]["step"]},
    }


def budget_line(budget: dict[str, Any]) -> str:
    """The training budget in one line, as every figure of a run states it: steps, batch, samples and epochs,
    and the run's wall time (training, its evaluations and checkpoints) with the evaluations' share."""
    hours = budget["wall_s"] / 3600
    text = (f"{budget['steps']} steps x batch {budget['batch_size']} = {budget['samples']:,} samples "
            f"({budget['epochs']:.1f} epochs of {budget['windows']:,} windows), {hours:.2f} {budget['device_kind']}-hours")
    if budget.get("eval_s"):
        text += f" ({budget['eval_s'] / 3600:.2f} of them rolling out)"
    return text + f" on {budget['device']}"


def plot_curve(path: Path, records: Sequence[dict[str, Any]], steps_list: Sequence[int], resumed_at: Sequence[int],
               title: str, budget: dict[str, Any]) -> Path:
    """Score and success of every periodic evaluation against samples seen (one line per step budget),
    resumes marked; the budget in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    per_step = budget["batch_size"] * budget.get("world_size", 1)
    logged = sorted((r["step"], r["samples"]) for r in records if "samples" in r)
    for k in steps_list:
        rows = evaluations(records, k)
        x = [r.get("samples", r["step"] * per_step) for r in rows]
        axes[0].plot(x, [r[eval_key("score", k)] for r in rows], marker="o", ms=3, label=f"{k} step{'s' * (k > 1)}")
        with_success = [(xi, r[eval_key("success", k)]) for xi, r in zip(x, rows) if eval_key("success", k) in r]
        axes[1].plot([xi for xi, _ in with_success], [100 * y for _, y in with_success], marker="o", ms=3,
                     label=f"{k} step{'s' * (k > 1)}")
    for ax, label in zip(axes, ("score", "success (%)")):
        for step in resumed_at:
            at = np.interp(step, *zip(*logged)) if logged else step * per_step  # the samples seen at that step
            ax.axvline(at, color="grey", ls="--", lw=0.8)
        ax.set_xlabel("samples seen")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if resumed_at:
        axes[0].text(0.01, 0.02, "dashed: resumed", transform=axes[0].transAxes, fontsize=8, color="grey")
    fig.suptitle(f"{title}\n{budget_line(budget)}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


def write_curve(out_dir: Path, records: Sequence[dict[str, Any]], steps_list: Sequence[int], last_k: int,
                resumed_at: Sequence[int], title: str, budget: dict[str, Any]) -> dict[str, Path]:
    """``curve.json`` (every evaluation, the summaries, the budget, the resumes) and ``curve.png`` in
    ``out_dir``, each written whole; nothing when no evaluation was made yet."""
    for r in records:
        for key, value in r.items():
            if key.startswith("eval_") and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"learning curve: {key} at step {r['step']} is {value!r}, not a finite number")
    summaries = [s for k in steps_list if (s := summarize(records, k, last_k)) is not None]
    if not summaries:
        return {}
    keep = ("step", "samples", "elapsed_s")
    curve = [{k: r[k] for k in r if k in keep or k.startswith("eval_")} for r in records
             if any(eval_key("score", k) in r for k in steps_list)]
    document = {"title": title, "budget": {**budget, "line": budget_line(budget)}, "summaries": summaries,
                "resumed_at_steps": list(resumed_at), "evaluations": curve}
    return {"curve_json": write_json(out_dir / CURVE_JSON, document),
            "curve_plot": plot_curve(out_dir / CURVE_PLOT, records, steps_list, resumed_at, title, budget)}


def summary_lines(summaries: Sequence[dict[str, Any]]) -> list[str]:
    """The summaries as lines a command prints."""
    lines = []
    for s in summaries:
        best, last = s["best"], s["last_k"]
        success = "" if best["success"] is None else f" / {best['success']:.0%}"
        last_success = "" if last["success"] is None else f" / {last['success']:.0%}"
        lines.append(f"{s['steps']} step{'s' * (s['steps'] > 1)}: best {best['score']:.3f}{success} at step {best['step']}; "
                     f"mean of the last {last['k']} {last['score']:.3f}{last_success} (steps {last['from_step']}-{last['to_step']}; "
                     f"{s['evaluations']} evaluations)")
    return lines
