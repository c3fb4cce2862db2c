#!/usr/bin/env bash
# One training sized to a lent GPU's time, then its evaluation on the GPU host's CPU cores, all in OUT:
#   bash benchmarks/gpu_long_run.sh OUT MINUTES BATCH [train overrides ...]
# e.g. (a 10-minute call): bash benchmarks/gpu_long_run.sh "$OUT/can" 6 1024 env=robosuite env.task=can \
#        env.dataset=datasets/robosuite_can_expert.zarr train.lr=1e-3
# 1. times 60 training steps of this very command at BATCH (OUT/calibrate) and sets train.num_steps so
#    that training takes MINUTES;
# 2. trains on the GPU, rolling out 10 test seeds at 1 step every tenth of the run on the host's cores:
#    the learning curve is OUT/run/eval/curve.json and curve.png, with the budget in its title;
# 3. evaluates the final checkpoint at 1, 2, 4 and 8 steps on 50 test seeds (OUT/eval), on the CPU.
# DEVICE=cpu runs the same on the CPU (a dry run of the script; the figures are then the CPU's).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 3 ]; then
  echo "usage: bash benchmarks/gpu_long_run.sh OUT MINUTES BATCH [train overrides ...]" >&2; exit 2
fi
OUT="$1"; MINUTES="$2"; BATCH="$3"; shift 3
DEVICE="${DEVICE:-cuda}"
WORKERS="$(python -c "import os; print(os.cpu_count())")"  # not nproc: it follows OMP_NUM_THREADS
python - "$MINUTES" "$BATCH" <<'EOF' || exit 2
import sys
minutes, batch = sys.argv[1:3]
try:
    ok = 0 < float(minutes) <= 60 and int(batch) >= 2
except ValueError:
    ok = False
if not ok:
    sys.exit(f"error: MINUTES: expected a number in (0, 60] and BATCH an integer >= 2, got {minutes!r} and {batch!r}")
EOF
if [ -e "$OUT" ]; then
  echo "error: OUT: $OUT exists; give a new folder (nothing in it is replaced)" >&2; exit 2
fi
mkdir -p "$OUT"
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU: $DEVICE"; echo "cores: $WORKERS"; } > "$OUT/machine.txt"
python -c "import torch; print('torch', torch.__version__)" >> "$OUT/machine.txt"
common=(train.device="$DEVICE" train.batch_size="$BATCH" env.rollout_workers="$WORKERS" "$@")

# 1. the step time of this command (data loading included), from its own metrics
python -m shortcut_policy.train "${common[@]}" train.num_steps=60 train.log_every=10 train.eval_episodes=0 \
  run_dir="$OUT/calibrate" > "$OUT/calibrate.log" 2>&1
STEPS="$(python - "$OUT/calibrate/metrics.jsonl" "$MINUTES" <<'EOF'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
at = {r["step"]: r["elapsed_s"] for r in records}
step_s = (at[60] - at[10]) / 50
print(max(100, int(float(sys.argv[2]) * 60 / step_s) // 100 * 100))
EOF
)"
echo "training $STEPS steps at batch $BATCH on $DEVICE (about $MINUTES minutes)" | tee -a "$OUT/machine.txt"

# 2. the run, with its learning curve
python -m shortcut_policy.train "${common[@]}" train.num_steps="$STEPS" train.eval_every=$((STEPS / 10)) \
  train.periodic_eval_episodes=10 train.eval_episodes=0 run_dir="$OUT/run" > "$OUT/train.log" 2>&1

# 3. the final checkpoint on 50 test seeds, rolled out on the host's cores
python -m shortcut_policy.evaluate checkpoint="$OUT/run" device=cpu episodes=50 "steps=[1,2,4,8]" latency_calls=0 \
  videos=1 rollout_workers="$WORKERS" out="$OUT/eval" > "$OUT/eval.log" 2>&1
tail -n 12 "$OUT/eval.log"
echo "wrote $OUT (run/eval/curve.png, eval/eval.md)"
