"""Are two training runs the same run? Weights bit for bit, and evaluations episode for episode.

A change that should not change results (a refactor, a new checkpoint layout) is checked by training
the same command with the code before and after it, on one machine, and comparing the two run folders:

    python benchmarks/same_runs.py <run before> <run after> [--eval <another eval.json of the same policy>] \
        --out docs/results/<name>.json

Prints a table (weights: equal tensors / all, largest difference; each evaluation row: score, success,
the episodes whose success or length differ, and those whose score differs, with the largest difference)
and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from safetensors import safe_open

from shortcut_policy.checkpoint import EVAL_DIR, POLICY_FILE
from shortcut_policy.utils.io import write_json


def weights(run: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(run / POLICY_FILE), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def compare_weights(a: Path, b: Path) -> dict:
    wa, wb = weights(a), weights(b)
    if wa.keys() != wb.keys():
        return {"same_keys": False, "only_before": sorted(wa.keys() - wb.keys()), "only_after": sorted(wb.keys() - wa.keys())}
    reshaped = sorted(k for k in wa if wa[k].shape != wb[k].shape)
    if reshaped:
        return {"same_keys": True, "tensors": len(wa), "equal_tensors": 0, "other_shapes": reshaped}
    equal = [k for k in wa if torch.equal(wa[k], wb[k])]
    largest = max((float((wa[k].double() - wb[k].double()).abs().max()) for k in wa if wa[k].numel()), default=0.0)
    return {"same_keys": True, "tensors": len(wa), "equal_tensors": len(equal), "largest_difference": largest}


def rows(path: Path) -> dict[int, dict]:
    return {row["steps"]: row for row in json.loads(path.read_text())["rows"]}


def compare_rows(a: Path, b: Path) -> list[dict]:
    ra, rb = rows(a), rows(b)
    if ra.keys() != rb.keys():
        raise ValueError(f"{a} and {b} evaluated other step budgets: {sorted(ra)} and {sorted(rb)}")
    out = []
    for steps in sorted(ra.keys() & rb.keys()):
        ea, eb = ra[steps]["per_episode"], rb[steps]["per_episode"]
        if [x["seed"] for x in ea] != [y["seed"] for y in eb]:
            raise ValueError(f"steps={steps}: the two evaluations ran other test seeds")
        outcome = [x["seed"] for x, y in zip(ea, eb) if (x["success"], x["length"]) != (y["success"], y["length"])]
        scores = [x["seed"] for x, y in zip(ea, eb) if x["score"] != y["score"]]
        out.append({"steps": steps, "score": [ra[steps]["score"], rb[steps]["score"]],
                    "success_rate": [ra[steps]["success_rate"], rb[steps]["success_rate"]], "episodes": len(ea),
                    "success_or_length_differ": outcome, "score_differs": scores,
                    "largest_score_difference": max(abs(x["score"] - y["score"]) for x, y in zip(ea, eb))})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="run folder trained with the code before the change")
    parser.add_argument("after", type=Path, help="run folder trained with the code after it")
    parser.add_argument("--eval", type=Path, nargs="*", default=[],
                        help="further eval.json files of the 'before' policy (e.g. evaluated by the new code)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for run in (args.before, args.after):
        if not (run / POLICY_FILE).is_file() or not (run / EVAL_DIR / "eval.json").is_file():
            parser.error(f"{run}: expected a run folder with {POLICY_FILE} and {EVAL_DIR}/eval.json")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "before": str(args.before), "after": str(args.after),
        "weights": compare_weights(args.before, args.after),
        "evaluations": {"after": compare_rows(args.before / EVAL_DIR / "eval.json", args.after / EVAL_DIR / "eval.json")},
    }
    for extra in args.eval:
        result["evaluations"][str(extra)] = compare_rows(args.before / EVAL_DIR / "eval.json", extra)
    w = result["weights"]
    print(f"weights: {w.get('equal_tensors')}/{w.get('tensors')} tensors equal, largest difference {w.get('largest_difference')}")
    print("| against | steps | score before / after | success before / after | episodes: success or length differ | "
          "score differs (largest difference) |")
    print("|---|---:|---|---|---:|---:|")
    for name, table in result["evaluations"].items():
        for r in table:
            print(f"| {name} | {r['steps']} | {r['score'][0]:.4f} / {r['score'][1]:.4f} | {r['success_rate'][0]:.0%} / "
                  f"{r['success_rate'][1]:.0%} | {len(r['success_or_length_differ'])} of {r['episodes']} | "
                  f"{len(r['score_differs'])} ({r['largest_score_difference']:.1e}) |")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
