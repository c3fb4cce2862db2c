#!/usr/bin/env bash
# The GPU checks of the multi-machine work, as one script for a machine with one CUDA device:
#   bash benchmarks/gpu_checks.sh [OUT]     (default OUT: docs/results/gpu_checks)
# 1. the CUDA-graph tests (equal actions, graph vs eager);
# 2. batch-1 act(steps=1) latency, CUDA graph vs eager (and 128 steps);
# 3. training samples/s on the GPU: eager fp32, bf16 autocast (and torch.compile, last: its compile time);
# 4. a 1-GPU torchrun run that trains 300 steps, then a rollout evaluation on the GPU (10 episodes, 1 and
#    128 steps, act() latency inside the rollouts; no videos).
# Needs the Push-T demonstrations where SHORTCUT_POLICY_DATA points (or makes them: about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results/gpu_checks}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python -m pytest -q tests/test_cuda_graph.py 2>&1 | tee "$OUT/test_cuda_graph.txt" || echo "cuda-graph tests: failed"
for graph in on off; do
  python benchmarks/act_latency.py --device cuda --cuda-graph "$graph" --steps 1 128 --out "$OUT/act_latency_graph_$graph.json"
done
python benchmarks/train_throughput.py --device cuda --steps 20 --repeats 3 --out "$OUT/train_throughput_eager.json"
python benchmarks/train_throughput.py --device cuda --steps 20 --repeats 3 --bf16 --out "$OUT/train_throughput_bf16.json"
torchrun --standalone --nproc_per_node=1 -m shortcut_policy.train env=push_t train.device=cuda train.num_steps=300 \
  train.eval_episodes=0 run_dir="$OUT/torchrun_1gpu" 2>&1 | tail -20 | tee "$OUT/torchrun_1gpu.txt"
python -m shortcut_policy.evaluate checkpoint="$OUT/torchrun_1gpu" device=cuda episodes=10 "steps=[1,128]" \
  latency_calls=100 videos=0 out="$OUT/torchrun_1gpu_eval" 2>&1 | tail -20 | tee "$OUT/torchrun_1gpu_eval.txt"
timeout 180 python benchmarks/train_throughput.py --device cuda --steps 20 --repeats 3 --compile \
  --out "$OUT/train_throughput_compiled.json" || echo "compiled throughput: exit $? (timeout 180 s)"
echo "wrote $OUT"
