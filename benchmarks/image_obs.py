"""What camera observations cost: training throughput with and without data loading, and act() at batch 1
split into the image encoder and the denoiser.

    python benchmarks/image_obs.py [env=push_t_image] [train.batch_size=64] [policy/vision=resnet18] ...
        (hydra overrides of the train command; --steps 20 --calls 100 --out <json>)

Builds the training run the overrides describe (its demonstration store must exist, or is generated as
training would), then, in rounds so that drift in the machine's speed hits every measure alike:
  * load: one batch drawn from the in-memory store, normalized into tensors (what the data loader does);
  * step: one training step (loss, backward, AdamW, EMA) on a batch already loaded;
  * step+load: the training loop's own step, which loads its batch;
and for act(steps=1) at batch 1 on one stored observation history: the observation encoder (image
encoders + low-dim keys) and the sampler (the denoiser's one call), and a whole replanning act().
Reports medians, samples/s and the loader's share of a step; writes JSON (default
docs/results/image_obs/throughput.json).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from shortcut_policy.config import load_config
from shortcut_policy.data import ReplayBuffer
from shortcut_policy.training.trainer import Trainer
from shortcut_policy.utils.device import cpu_model, describe_device
from shortcut_policy.utils.io import write_json
from shortcut_policy.utils.paths import config_dir

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results" / "image_obs" / "throughput.json"


def median_ms(fn, n: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="hydra overrides of the train command (env=push_t_image ...)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per measure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=100, help="timed act() calls per measure")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if min(args.steps, args.rounds, args.calls) < 1:
        parser.error("--steps, --rounds and --calls: expected >= 1")
    torch.set_grad_enabled(True)
    with initialize_config_dir(config_dir=str(config_dir()), version_base=None):
        cfg = compose("train", overrides=[*args.overrides, "train.eval_episodes=0", "train.eval_every=0"])
    config = load_config(cfg)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(config, Path(run_dir) / "run", progress=True)
        start = time.perf_counter()
        ReplayBuffer.open(trainer.demos.path, keys=[*config.env.obs_keys, config.env.action_key])
        open_s = time.perf_counter() - start
        batch = config.train.batch_size
        fixed = trainer.sample_batch("train", batch, trainer.rng)
        loop_sample = trainer.sample_batch

        def step_loaded() -> None:
            trainer.sample_batch = lambda *a: fixed
            trainer.train_step()
            trainer.sample_batch = loop_sample

        rounds = {"load_ms": [], "step_ms": [], "step_with_load_ms": []}
        for _ in range(args.rounds):
            rounds["load_ms"].append(median_ms(lambda: trainer.sample_batch("train", batch, trainer.rng), args.steps))
            rounds["step_ms"].append(median_ms(step_loaded, args.steps))
            rounds["step_with_load_ms"].append(median_ms(trainer.train_step, args.steps))
        train = {k: float(np.median(v)) for k, v in rounds.items()}
        train["samples_per_s"] = batch / train["step_with_load_ms"] * 1e3
        train["loader_share"] = train["load_ms"] / train["step_with_load_ms"]

        policy = trainer.policy()
        window = trainer.demos.samplers["train"].sample(np.array([0]))["obs"]  # (1, To, ...) one stored history
        nobs = {k: policy.normalizer.normalize(k, torch.as_tensor(v, dtype=torch.float32)) for k, v in window.items()}
        cond = policy.network.encode(nobs)
        frame = {k: v[0, -1] for k, v in window.items()}
        with torch.inference_mode():
            encode_ms = median_ms(lambda: policy.network.encode(nobs), args.calls)
            sample_ms = median_ms(lambda: policy.objective.sample(policy.network, cond, (policy.horizon, policy.action_dim), 1), args.calls)

        def replan() -> None:
            policy.reset()
            policy.act(frame, steps=1)

        act = {"encode_ms": encode_ms, "sample_1_step_ms": sample_ms, "replanning_act_ms": median_ms(replan, args.calls)}
        act["encoder_share"] = encode_ms / act["replanning_act_ms"]
        n_encoder = sum(p.numel() for p in policy.network.encoder.parameters())
        n_all = sum(p.numel() for p in policy.network.parameters())

    result = {
        "command": "python benchmarks/image_obs.py " + " ".join(args.overrides),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"device": describe_device(trainer.device), "cpu": cpu_model(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
        "obs_keys": list(config.env.obs_keys), "obs_shapes": {k: list(v) for k, v in trainer.contract.obs_shapes.items()},
        "vision": dict(cfg.policy.vision), "batch_size": batch, "objective": config.objective["name"],
        "parameters": {"encoder": n_encoder, "total": n_all},
        "store": {"path": str(trainer.demos.path), "steps": trainer.demos.buffer.n_steps, "open_s": open_s},
        "train": train, "act": act, "rounds": rounds,
    }
    print(f"\n{config.env.name} {list(config.env.obs_keys)}, encoder {cfg.policy.vision.encoder} "
          f"({n_encoder / 1e6:.2f}M of {n_all / 1e6:.2f}M params), batch {batch}, {result['machine']['device']}")
    print(f"store: {trainer.demos.buffer.n_steps} steps, opened into memory in {open_s:.1f} s")
    print("| measure | median |\n|---|---:|")
    print(f"| load one batch | {train['load_ms']:.1f} ms |")
    print(f"| training step, batch loaded | {train['step_ms']:.1f} ms |")
    print(f"| training step with loading | {train['step_with_load_ms']:.1f} ms ({train['samples_per_s']:.0f} samples/s, "
          f"loading {train['loader_share']:.0%}) |")
    print(f"| act(steps=1): encoder | {encode_ms:.2f} ms |")
    print(f"| act(steps=1): sampler (1 denoiser call) | {sample_ms:.2f} ms |")
    print(f"| act(steps=1): whole replanning call | {act['replanning_act_ms']:.2f} ms (encoder {act['encoder_share']:.0%}) |")
    print(f"wrote {write_json(args.out, result)}")


if __name__ == "__main__":
    main()
