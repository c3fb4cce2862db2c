"""The paper's image comparison: shortcut vs flow matching, same DiT, data, budget and evaluation.

Each method is trained (or, when ``<out>/runs/<method>`` holds a finished run, reused) with
``image.trainer.run_image``; the combined table (Markdown, JSON) and a plot of Fréchet distance and
class accuracy against the number of steps land in ``<out>``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from ..checkpoint import EVAL_DIR
from ..config import ImageRunConfig, to_dict
from ..objectives import build_objective, check_steps
from ..utils.io import atomic_write, write_json, write_text
from .trainer import image_table, report_footer, run_image


def parity_report(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown: one table over methods, then the feature-space note (identical for every method)."""
    tables = [image_table(report, method).splitlines() for method, report in reports.items()]
    lines = tables[0][:2] + [line for table in tables for line in table[2:]]
    return "\n".join(lines) + "\n\n" + report_footer(next(iter(reports.values()))) + "\n"


def plot_parity(path: Path, reports: dict[str, dict[str, Any]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, report in reports.items():
        steps = [r["steps"] for r in report["rows"]]
        axes[0].plot(steps, [r["frechet_distance"] for r in report["rows"]], marker="o", label=method)
        axes[1].plot(steps, [r["class_accuracy"] for r in report["rows"]], marker="o", label=method)
    floor = next(iter(reports.values()))["real_test_vs_train_fd"]
    axes[0].axhline(floor, color="gray", linestyle=":", label="real test images")
    for ax, name in zip(axes, ["Fréchet distance (lower is better)", "class accuracy of samples"]):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("sampling steps (NFE)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return path


def image_parity(base: ImageRunConfig, objectives: dict[str, dict], out: str | Path, retrain: bool = False,
                 progress: bool = True) -> dict[str, Path]:
    """Train/evaluate every method in ``objectives`` (name -> objective config) under ``base``; write the table."""
    for method, objective in objectives.items():  # every method's settings, before the first one trains
        try:
            check_steps("eval.steps", base.eval.steps, build_objective(objective))
        except (TypeError, ValueError) as err:
            raise ValueError(f"objectives.{method}: {err}") from None
    out = Path(out)
    print(f"output folder: {out.resolve()}")
    reports = {}
    for method, objective in objectives.items():
        run_dir = out / "runs" / method
        report_path = run_dir / EVAL_DIR / "eval.json"
        # this comparison owns its runs' folders: one it does not reuse is trained anew there
        config = dataclasses.replace(base, objective=dict(objective), run_dir=str(run_dir),
                                     train=dataclasses.replace(base.train, overwrite=True))
        if report_path.is_file() and not retrain and json.loads(report_path.read_text())["config"] == _as_json(config):
            print(f"{method}: reusing the finished run in {run_dir}")
        else:
            run_image(config, run_dir, progress=progress)
        reports[method] = json.loads(report_path.read_text())
    markdown = parity_report(reports)
    paths = {
        "markdown": write_text(out / "parity.md", markdown),
        "json": write_json(out / "parity.json", {m: {k: v for k, v in r.items() if k != "config"} | {"objective": r["config"]["objective"]}
                                                 for m, r in reports.items()}),
        "plot": plot_parity(out / "parity.png", reports),
    }
    print(markdown)
    print(f"output folder: {out.resolve()}")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return paths


def _as_json(config: ImageRunConfig) -> dict:
    """The config as its eval.json stores it (JSON round trip), to tell whether a finished run matches."""
    return json.loads(json.dumps(to_dict(config)))
