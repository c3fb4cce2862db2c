"""A comparison's table and plots: ``compare.md``, ``score_vs_nfe.png``, ``latency_vs_nfe.png``, ``pareto.png``."""

from __future__ import annotations

from pathlib import Path

from ..envs import EnvSpec
from ..evaluation.report import score_axis
from ..utils.io import atomic_write


def markdown(rows: list[dict]) -> str:
    counts = sorted({r["seeds"] for r in rows})
    n_seeds = str(counts[0]) if len(counts) == 1 else "n"  # given checkpoints may differ in number per method
    lines = [
        f"| method | steps (NFE) | score ({'1 training seed, no CI' if n_seeds == '1' else f'mean ± 95% CI, {n_seeds} training seeds'}) | "
        "success (95% Wilson) | act() median / p95 (ms) | replan median / p95 (ms) | control Hz (1/replan p95) |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in rows:
        low, high = r["success_ci95"]
        lat = f"{r['act_median_ms']:.2f} / {r['act_p95_ms']:.2f}" if r["act_median_ms"] is not None else "-"
        rep = f"{r['replan_median_ms']:.2f} / {r['replan_p95_ms']:.2f}" if r["replan_median_ms"] is not None else "-"
        hz = f"{r['control_hz']:.0f}" if r["control_hz"] else "-"
        n_note = "" if len(counts) == 1 else f" (n={r['seeds']})"
        # one training seed has no spread to show: a "± 0.000" would read as certainty
        ci = f" ± {r['score_ci95']:.3f}" if r["seeds"] > 1 else ""
        lines.append(
            f"| {r['method']} | {r['steps']} | {r['score_mean']:.3f}{ci}{n_note} | "
            f"{r['success_rate']:.0%} ({low:.0%}-{high:.0%}) | {lat} | {rep} | {hz} |"
        )
    return "\n".join(lines) + "\n"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points (latency, score) that no other point beats on both (lower latency, higher score)."""
    front = []
    for i, (lat, score) in enumerate(points):
        dominated = any(
            (l2 <= lat and s2 >= score) and (l2 < lat or s2 > score) for j, (l2, s2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return front


def score_vs_nfe_figure(series: dict[str, list[dict]], title: str, spec: EnvSpec, legend: str = "best"):
    """Score (mean, 95% CI across training seeds) against NFE, one line per labelled list of table rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in series.items():
        ci = [r["score_ci95"] for r in rows]  # None with one training seed: no bar
        ax.errorbar([r["steps"] for r in rows], [r["score_mean"] for r in rows],
                    yerr=None if all(c is None for c in ci) else [c or 0.0 for c in ci], marker="o", capsize=3, label=label)
    ax.set(xscale="log", xlabel="sampling steps (NFE)", title=title, **score_axis(spec))
    ax.legend(loc=legend)
    return fig


def plot(out_dir: Path, rows: list[dict], title: str, spec: EnvSpec) -> list[Path]:
    """The score-vs-NFE plot, and with latency measured the latency-vs-NFE and Pareto plots; ``spec``: the env."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows))
    paths = []

    def save(fig, name):
        fig.tight_layout()
        path = atomic_write(out_dir / name, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
        plt.close(fig)
        paths.append(path)

    save(score_vs_nfe_figure({m: [r for r in rows if r["method"] == m] for m in methods}, f"{title}: score vs NFE", spec), "score_vs_nfe.png")

    if all(r["replan_median_ms"] is None for r in rows):
        print("no act() latency measured (latency_calls=0): no latency or Pareto plot")
        return paths

    fig, ax = plt.subplots(figsize=(6, 4))
    for m in methods:
        mr = [r for r in rows if r["method"] == m and r["replan_median_ms"] is not None]
        ax.plot([r["steps"] for r in mr], [r["replan_median_ms"] for r in mr], "o-", label=m)
    ax.set(xscale="log", yscale="log", xlabel="sampling steps (NFE)", ylabel="replanning act() median (ms)", title=f"{title}: latency vs NFE")
    ax.legend()
    save(fig, "latency_vs_nfe.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    pts = [(r["replan_median_ms"], r["score_mean"]) for r in rows if r["replan_median_ms"] is not None]
    labelled = [r for r in rows if r["replan_median_ms"] is not None]
    for m in methods:
        mr = [r for r in labelled if r["method"] == m]
        ax.scatter([r["replan_median_ms"] for r in mr], [r["score_mean"] for r in mr], label=m)
        for r in mr:
            ax.annotate(str(r["steps"]), (r["replan_median_ms"], r["score_mean"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = sorted((pts[i] for i in pareto_front(pts)), key=lambda p: p[0])
    if front:
        ax.step([p[0] for p in front], [p[1] for p in front], "k--", where="post", label="Pareto front")
    ax.set(xscale="log", xlabel="replanning act() median (ms, batch 1)", title=f"{title}: score vs latency", **score_axis(spec))
    ax.legend()
    save(fig, "pareto.png")
    return paths
