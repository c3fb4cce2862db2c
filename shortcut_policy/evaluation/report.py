"""An evaluation's rows as a report: ``eval.json``, ``eval.md`` (table) and ``eval.png`` (score and latency against steps)."""

from __future__ import annotations

from pathlib import Path

from ..envs import EnvSpec
from ..utils.io import atomic_write, write_json, write_text


def figure(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def smoothness_cells(r: dict) -> str:
    """Jerk (action units), jerk (normalized units), boundary jerk minus interior jerk."""
    return f"{figure(r.get('jerk'))} | {figure(r.get('jerk_normalized'), 3)} | {figure(r.get('boundary_minus_interior'))}"


def markdown_table(rows: list[dict], demonstrations: dict | None = None) -> str:
    """One line per step budget; the demonstrations' smoothness last, as the reference."""
    lines = [
        "| steps (NFE) | score | success (95% CI) | mean length | jerk | jerk (normalized) | boundary - interior jerk "
        "| act median / p95 (ms) | replan median / p95 (ms) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["success_ci95"]
        lat = f"{r['act_median_ms']:.2f} / {r['act_p95_ms']:.2f}" if "act_median_ms" in r else "-"
        rep = f"{r['replan_median_ms']:.2f} / {r['replan_p95_ms']:.2f}" if "replan_median_ms" in r else "-"
        lines.append(
            f"| {r['steps']} | {r['score']:.3f} | {r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | "
            f"{r['mean_length']:.0f} | {smoothness_cells(r)} | {lat} | {rep} |"
        )
    if demonstrations:
        lines.append(f"| demonstrations ({demonstrations['episodes']}, cut every {demonstrations['period']}) | - | - | - | "
                     f"{smoothness_cells(demonstrations)} | - | - |")
    return "\n".join(lines) + "\n"


def deadline_table(rows: list[dict]) -> str:
    """The rows of ``evaluate_deadlines``: what each deadline picked, and how it scored."""
    lines = [
        "| deadline (ms) | budgets picked (replans) | replan p95 (ms) | score | success (95% CI) | jerk |",
        "|---:|---|---|---:|---|---:|",
    ]
    for r in rows:
        low, high = r["success_ci95"]
        picked = ", ".join(f"{k}: {v}" for k, v in r["steps_chosen"].items())
        p95 = ", ".join(f"{k}: {v:.2f}" for k, v in r["replan_p95_ms"].items())
        jerk = figure(r.get("jerk"))
        lines.append(f"| {r['deadline_ms']:g} | {picked} | {p95} | {r['score']:.3f} | {r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | {jerk} |")
    return "\n".join(lines) + "\n"


def clock_table(rows: list[dict]) -> str:
    """The rows of ``evaluate_on_clock``: each budget under each inference delay (control ticks)."""
    lines = [
        "| steps (NFE) | delay (ticks) | from latency (ms) | lookahead | score | success (95% CI) | jerk | "
        "boundary - interior jerk | dry ticks per episode |",
        "|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        if "refused" in r:
            lines.append(f"| {r['steps']} | {r['delay_steps']} | {figure(r.get('latency_ms'), 1)} | {r['lookahead']} | "
                         f"not rolled out: {r['refused']} | | | | |")
            continue
        low, high = r["success_ci95"]
        lines.append(f"| {r['steps']} | {r['delay_steps']} | {figure(r.get('latency_ms'), 1)} | {r['lookahead']} | "
                     f"{r['score']:.3f} | {r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | {figure(r.get('jerk'))} | "
                     f"{figure(r.get('boundary_minus_interior'))} | {r['dry_ticks']:.1f} |")
    return "\n".join(lines) + "\n"


def score_axis(spec: EnvSpec) -> dict:
    """Matplotlib ``ax.set`` options of an axis of the env's episode score: its name, its range and a margin."""
    low, high = spec.score_range
    return {"ylabel": spec.score_name, "ylim": (low, high + 0.05 * (high - low))}


def plot_rows(path: str | Path, rows: list[dict], title: str, spec: EnvSpec, demonstrations: dict | None = None) -> Path:
    """Score and success, act() latency, and the executed actions' jerk (boundary and interior, the
    demonstrations' dotted) against the step budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["steps"] for r in rows]
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 4))
    ax1.plot(steps, [r["score"] for r in rows], "o-", label="score (mean over episodes)")
    ax1.plot(steps, [r["success_rate"] for r in rows], "s--", label="success rate")
    ax1.set(xscale="log", xlabel="sampling steps (NFE)", **score_axis(spec))
    fig.suptitle(title, fontsize=9)  # a line of budget may follow the name, too long for one axis
    ax1.set_xticks(steps, [str(s) for s in steps])
    ax1.minorticks_off()
    ax1.legend()
    if "replan_median_ms" in rows[0]:
        ax2.plot(steps, [r["replan_median_ms"] for r in rows], "o-", label="replanning act() median")
        ax2.plot(steps, [r["act_median_ms"] for r in rows], "s--", label="act() median, all calls")
        ax2.set(xscale="log", yscale="log", xlabel="sampling steps (NFE)", ylabel="latency (ms, batch 1)")
        ax2.set_xticks(steps, [str(s) for s in steps])
        ax2.xaxis.set_tick_params(which="minor", labelbottom=False)
        ax2.legend()
    for key, style, label in (("jerk", "o-", "all windows"), ("boundary_jerk", "s--", "across two chunks"),
                              ("interior_jerk", "^:", "inside a chunk")):
        points = [(s, r[key]) for s, r in zip(steps, rows) if r.get(key) is not None and r[key] > 0]  # a log axis
        if points:
            line, = ax3.plot(*zip(*points), style, label=label)
            if demonstrations and (demonstrations.get(key) or 0) > 0:
                ax3.axhline(demonstrations[key], color=line.get_color(), ls=":", lw=1)
    if demonstrations:
        ax3.plot([], [], "k:", lw=1, label="demonstrations (dotted)")
    ax3.set(xscale="log", yscale="log", xlabel="sampling steps (NFE)", ylabel="jerk of executed actions (action units)")
    ax3.set_xticks(steps, [str(s) for s in steps])
    ax3.xaxis.set_tick_params(which="minor", labelbottom=False)
    if ax3.lines:
        ax3.legend(fontsize=8)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def plot_deadlines(path: str | Path, rows: list[dict], title: str, spec: EnvSpec) -> Path:
    """Score and success against the deadline, each point labelled with the budget used most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    deadlines = [r["deadline_ms"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(deadlines, [r["score"] for r in rows], "o-", label="score (mean over episodes)")
    ax.plot(deadlines, [r["success_rate"] for r in rows], "s--", label="success rate")
    for r in rows:
        ax.annotate(f"{r['steps']} step{'s' if r['steps'] > 1 else ''}", (r["deadline_ms"], r["score"]),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    ax.set(xscale="log", xlabel="replanning deadline (ms)", title=title, **score_axis(spec))
    ax.set_xticks(deadlines, [f"{d:g}" for d in deadlines])
    ax.legend()
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def write_report(
    out_dir: str | Path, rows: list[dict], meta: dict, spec: EnvSpec, title: str = "", deadline_rows: list[dict] | None = None,
    clock_rows: list[dict] | None = None,
) -> dict[str, Path]:
    """Write eval.json, eval.md and eval.png (when there are step rows) into ``out_dir``; ``spec``: the env the rows
    were rolled out in; ``deadline_rows``: those of ``evaluate_deadlines``, in the JSON, as a second table and
    as eval_deadline.png; ``meta["demonstrations"]`` (``demonstration_smoothness``): the reference row of
    the table and the plot's dotted lines; ``clock_rows`` (``evaluate_on_clock``): a table of their own."""
    out_dir = Path(out_dir)
    report = {**meta, "rows": rows, **({"deadline_rows": deadline_rows} if deadline_rows else {}),
              **({"clock_rows": clock_rows} if clock_rows else {})}
    demonstrations = meta.get("demonstrations")
    tables = "\n".join(([markdown_table(rows, demonstrations)] if rows else [])
                       + ([deadline_table(deadline_rows)] if deadline_rows else [])
                       + ([clock_table(clock_rows)] if clock_rows else []))
    paths = {"json": write_json(out_dir / "eval.json", report), "markdown": write_text(out_dir / "eval.md", tables)}
    if rows:
        paths["plot"] = plot_rows(out_dir / "eval.png", rows, title, spec, demonstrations)
    if deadline_rows:
        paths["deadline plot"] = plot_deadlines(out_dir / "eval_deadline.png", deadline_rows, title, spec)
    return paths
