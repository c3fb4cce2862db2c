"""Kill a training with SIGKILL at random moments, resume it with the documented command, and compare the
final policy with an uninterrupted run's, tensor by tensor.

    python benchmarks/kill_resume.py --reference outputs/push_t/<uninterrupted run> [--kills 3] [--seed 0] \\
        [--run-dir runs/killed] [overrides ...]

The run starts as ``python -m shortcut_policy.train <overrides> run_dir=<run-dir>`` (the default command
when no override is given); at each of ``--kills`` moments, drawn uniformly over the training steps
(seeded), it is killed with ``kill -9`` once its metrics log has reached that step, then resumed with
``python -m shortcut_policy.train train.resume=true run_dir=<run-dir>`` and nothing else. The last
resume runs to the end. Reports whether every tensor of ``policy.safetensors`` equals the reference's
exactly, and writes docs/results/kill_resume.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from shortcut_policy.checkpoint import METRICS_FILE, POLICY_FILE, load_tensors, resolve_checkpoint
from shortcut_policy.comparison.runs import last_logged_step
from shortcut_policy.utils.io import write_json

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "kill_resume.json"


def start(args: list[str], log: Path) -> subprocess.Popen:
    print(f"$ python -m shortcut_policy.train {' '.join(args)}", flush=True)
    return subprocess.Popen([sys.executable, "-m", "shortcut_policy.train", *args], stdout=open(log, "a"),
                            stderr=subprocess.STDOUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="an uninterrupted run (folder or policy.safetensors)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/killed"))
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="draws the moments")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args, overrides = parser.parse_known_args()
    reference = resolve_checkpoint(args.reference)
    ref_tensors, ref_meta = load_tensors(reference)
    total = int(ref_meta["config"]["train"]["num_steps"])
    if args.run_dir.exists():
        parser.error(f"--run-dir: {args.run_dir} exists; give a new folder")
    moments = sorted(int(s) for s in np.random.default_rng(args.seed).integers(1, total, size=args.kills))
    log = args.run_dir.parent / f"{args.run_dir.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = start([*overrides, f"run_dir={args.run_dir}"], log)
    kills = []
    for moment in moments:
        while last_logged_step(args.run_dir) < moment:
            if process.poll() is not None:
                raise SystemExit(f"the training ended (exit {process.returncode}) before step {moment}; see {log}")
            time.sleep(0.5)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        step = last_logged_step(args.run_dir)
        kills.append({"asked_step": moment, "killed_at_logged_step": step})
        print(f"killed -9 at logged step {step} (moment {moment})", flush=True)
        process = start(["train.resume=true", f"run_dir={args.run_dir}"], log)
    if process.wait() != 0:
        raise SystemExit(f"the last resume failed (exit {process.returncode}); see {log}")
    tensors, meta = load_tensors(args.run_dir / POLICY_FILE)
    differing = sorted(k for k in ref_tensors.keys() | tensors.keys()
                       if k not in tensors or k not in ref_tensors or not torch.equal(tensors[k], ref_tensors[k]))
    steps = [json.loads(line)["step"] for line in (args.run_dir / METRICS_FILE).read_text().splitlines()]
    result = {
        "reference": str(reference), "run_dir": str(args.run_dir), "overrides": overrides, "moments": moments,
        "kills": kills, "tensors": len(ref_tensors), "differing_tensors": differing,
        "bit_identical": not differing, "final_step": meta["step"], "metrics_steps_unique": len(steps) == len(set(steps)),
        "seconds": time.perf_counter() - started, "date": time.strftime("%Y-%m-%d"),
    }
    scores = {}
    for name, folder in (("reference", reference.parent), ("killed", args.run_dir)):
        report = folder / "eval" / "eval.json"
        if report.is_file():
            scores[name] = {row["steps"]: row["score"] for row in json.loads(report.read_text())["rows"]}
    result["scores"] = scores
    print(f"\n{len(ref_tensors)} tensors compared with {reference}: "
          f"{'all bit-identical' if not differing else f'{len(differing)} differ: {differing[:5]}'}; "
          f"metrics.jsonl steps unique: {result['metrics_steps_unique']}")
    if scores:
        print(f"rollout scores by steps: {scores}")
    print(f"wrote {write_json(args.out, result)}")
    if differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
