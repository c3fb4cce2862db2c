"""One comparison report from several that each trained other seeds of the same comparison.

    python -m shortcut_policy.comparison.merge --out OUT seed0/compare.json seed1/compare.json seed2/compare.json

A comparison can be run a training seed at a time (``seeds=[0]``, then ``seeds=[1]``, ... each with its own
``out``), so that each seed's report is kept as soon as it is done, on a machine whose sessions end. This
puts them back together: the same table, JSON and plots as one ``compare`` over every seed, with the
intervals over all of them. Each report must hold one training seed, trained by that comparison (so the
seed is known), with the same settings as the others apart from how it was run (``seeds``, ``out``,
``jobs``, ``latency_calls``, ``evaluate``, ``retrain``). Latency comes from the first report that
measured it. The machines the reports ran on are listed in the merged JSON, and printed when they differ.
An earlier merge in ``--out`` is replaced (merge again as seeds come in); a comparison's own report is not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

from ..config import CompareConfig, load_config, saved_as_trained
from ..training.resume import changes, with_objective_options
from ..utils.cli import describe
from ..utils.io import write_json, write_text
from .report import markdown, plot
from .runs import aggregate

HOW_RUN = ("seeds", "out", "jobs", "latency_calls", "evaluate", "retrain")  # keys that may differ between reports
PER_SEED = ("steps", "episodes", "act_median_ms", "act_p95_ms", "replan_median_ms", "replan_p95_ms")


def read_report(path: Path) -> dict:
    """A ``compare.json`` holding one training seed that the comparison trained itself."""
    try:
        report = json.loads(path.read_text())
        rows, config = report["rows"], report["config"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"reports: cannot read a comparison report (compare.json) at {path}: {err}") from None
    if any(config["checkpoints"].get(m) for m in config["methods"]):
        raise ValueError(f"reports: {path} evaluated given checkpoints, whose training seeds it does not know; "
                         "merge reports whose comparison trained its runs")
    if len(config["seeds"]) != 1 or any(r["seeds"] != 1 for r in rows):
        raise ValueError(f"reports: expected one training seed per report, got seeds {config['seeds']} in {path}")
    # its settings as trained, and each method's objective with every option spelled out, so that reports from
    # either side of a new option, or of a default written out, compare equal
    try:
        report["config"] = saved_as_trained(config, CompareConfig)
        report["config"]["objectives"] = {m: with_objective_options({"objective": o})["objective"]
                                          for m, o in report["config"]["objectives"].items()}
    except (ValueError, TypeError, OmegaConfBaseException) as err:
        raise ValueError(f"reports: the settings in {path} do not read as this version's: {describe(err)}") from None
    return report


def merge_reports(paths: list[Path], out_dir: Path) -> list[Path]:
    """Write ``compare.md``, ``compare.json`` and the plots of the seeds of ``paths`` together into ``out_dir``."""
    if len(paths) < 2:
        raise ValueError(f"reports: expected at least 2 compare.json files, got {len(paths)}")
    reports = [read_report(Path(p)) for p in paths]
    out_dir = Path(out_dir)
    if (out_dir / "compare.json").is_file() and "merged_from" not in json.loads((out_dir / "compare.json").read_text()):
        raise ValueError(f"out: {out_dir} holds a comparison's own report, which merging would replace; choose another out")
    first = reports[0]["config"]
    seen: dict[int, Path] = {}
    for path, report in zip(paths, reports):
        config = report["config"]
        differ = [key for key in changes(first, config) if key.split(".")[0] not in HOW_RUN]  # dotted: train.num_steps
        if differ:
            raise ValueError(f"reports: {path} was run with other settings than {paths[0]}: {', '.join(differ)} differ")
        seed = config["seeds"][0]
        if seed in seen:
            raise ValueError(f"reports: training seed {seed} is in both {seen[seed]} and {path}")
        seen[seed] = path
    cfg = load_config({**first, "seeds": list(seen), "out": str(out_dir)}, CompareConfig)  # settings checked again
    spec = cfg.env.spec()
    rows = []
    for method in cfg.methods:
        per_seed = []
        for report in reports:
            mine = [r for r in report["rows"] if r["method"] == method]
            # a one-seed row is that seed's own evaluation row: its score, and successes out of its episodes
            per_seed.append([{**{k: r[k] for k in PER_SEED}, "score": r["score_mean"], "success_rate": r["success_rate"]}
                             for r in mine])
        merged = aggregate(method, per_seed)  # latency from the first report's rows
        timed = [s for s in per_seed if any(r["replan_median_ms"] is not None for r in s)]
        if timed and timed[0] is not per_seed[0]:  # the first report did not time act(): take the first that did
            for row, timed_row in zip(merged, aggregate(method, [timed[0]]), strict=True):
                row.update({k: timed_row[k] for k in (*PER_SEED[2:], "control_hz")})
        rows.extend(merged)
    machines = [report.get("machine") for report in reports]
    if any(m != machines[0] for m in machines):
        print("the reports ran on different machines (a CPU's rounding changes training): "
              + "; ".join(f"{p}: {m}" for p, m in zip(paths, machines)))
    table = markdown(rows)
    written = [
        write_text(out_dir / "compare.md", table),
        write_json(out_dir / "compare.json", {
            "rows": rows, "merged_from": [str(p) for p in paths], "seeds": list(seen),
            "seconds": sum(r.get("seconds", 0.0) for r in reports), "config": {**first, "seeds": list(seen)},
            "machines": machines}),
        *plot(out_dir, rows, f"{spec.label} · {cfg.policy.backbone}", spec),
    ]
    print(table)
    print("wrote:\n" + "\n".join(f"  {p}" for p in written))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="compare.json files, one training seed each")
    parser.add_argument("--out", type=Path, required=True, help="folder for the merged compare.md/json and plots")
    args = parser.parse_args(argv)
    try:
        merge_reports(args.reports, args.out)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
