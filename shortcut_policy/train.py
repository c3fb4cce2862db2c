"""Train a policy: demonstrations -> sampler -> normalizer -> objective(network) -> EMA -> checkpoint.

    python -m shortcut_policy.train env=push_t
    python -m shortcut_policy.train env=push_t train.num_steps=20000 policy.unet.down_dims=[256,512,1024]
    python -m shortcut_policy.train run_dir=<killed run> train.resume=true

Makes (or reuses) the demonstration store, trains, checkpoints atomically, and ends with a rollout
evaluation at ``train.eval_steps`` whose table, JSON and plot land in the run folder.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from .checkpoint import (
    TRAIN_STATE_FILE,
    POLICY_FILE,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prefixed,
    save_tensors,
    unprefixed,
)
from .config import RunConfig, load_config, to_dict
from .data import MinMaxNormalizer, ReplayBuffer, SequenceSampler, split_episodes
from .envs import get_env_spec
from .ema import EMA
from .evaluate import evaluate_policy, format_row, markdown_table, write_report
from .generate_demos import default_dataset_path, generate_demos
from .io import write_json
from .models.network import build_network
from .objectives import build_objective
from .paths import config_dir
from .policy import Policy, resolve_device, save_policy

IMAGE_RANGE = (0.0, 255.0)  # uint8 images are scaled by a fixed range, not per-pixel statistics


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warmup to ``base_lr``, then cosine decay to zero at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def to_batch(sample: dict, normalizer: MinMaxNormalizer, action_key: str, device: torch.device):
    """Sampler output (numpy) -> normalized tensors: (obs dict (B, To, ...), actions (B, H, A))."""
    obs = {k: normalizer.normalize(k, torch.from_numpy(v).to(device).float()) for k, v in sample["obs"].items()}
    actions = normalizer.normalize(action_key, torch.from_numpy(sample["action"]).to(device).float())
    return obs, actions


class Trainer:
    """One training loop for every objective and backbone."""

    def __init__(self, config: RunConfig, run_dir: Path, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        tc = config.train
        self.device = resolve_device(tc.device)
        torch.manual_seed(tc.seed)
        self.rng = np.random.default_rng(tc.seed)
        self.generator = torch.Generator().manual_seed(tc.seed)

        self.spec = get_env_spec(config.env.name)
        for key in config.env.obs_keys:
            if key not in self.spec.obs_shapes:
                raise ValueError(f"env.obs_keys: {key!r} is not an observation of {self.spec.name} ({sorted(self.spec.obs_shapes)})")
        self.dataset_path = self.ensure_dataset()
        keys = [*config.env.obs_keys, config.env.action_key]
        self.buffer = ReplayBuffer.open(self.dataset_path, keys=keys)
        train_eps, val_eps = split_episodes(self.buffer.n_episodes, tc.val_ratio, tc.seed)
        window = dict(
            horizon=config.policy.horizon,
            n_obs_steps=config.policy.n_obs_steps,
            n_action_steps=config.policy.n_action_steps,
            obs_keys=config.env.obs_keys,
            action_key=config.env.action_key,
        )
        self.train_sampler = SequenceSampler(self.buffer, episodes=train_eps, **window)
        self.val_sampler = SequenceSampler(self.buffer, episodes=val_eps, **window) if len(val_eps) else None
        fixed = {k: IMAGE_RANGE for k in config.env.obs_keys if self.buffer.data[k].dtype == np.uint8}
        self.normalizer = MinMaxNormalizer.fit({k: self.buffer.data[k] for k in keys}, fixed_ranges=fixed).to(self.device)
        self.obs_shapes = {k: tuple(self.buffer.data[k].shape[1:]) for k in config.env.obs_keys}
        self.action_dim = int(self.buffer.data[config.env.action_key].shape[-1])

        self.objective = build_objective(config.objective)
        self.network = build_network(config.policy, self.obs_shapes, self.action_dim, self.objective.n_levels).to(self.device)
        self.ema = EMA(self.network, tc.ema_power, tc.ema_max_decay)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=tc.lr, betas=(0.95, 0.999), weight_decay=tc.weight_decay
        )
        self.step = 0
        if tc.resume:
            self.load_train_state()

    # ------------------------------------------------------------------ data
    def ensure_dataset(self) -> Path:
        env = self.config.env
        path = Path(env.dataset) if env.dataset else default_dataset_path(env.name)
        if path.exists():
            print(f"using demonstrations at {path}")
            return path
        print(f"no demonstrations at {path}: generating {env.demo_episodes} expert episodes")
        image = any(len(self.spec.obs_shapes[k]) == 3 for k in env.obs_keys)
        return generate_demos(env.name, env.demo_episodes, env.demo_seed, path, image=image, progress=self.progress)

    def sample_batch(self, sampler: SequenceSampler, batch_size: int, rng: np.random.Generator):
        idx = rng.integers(0, len(sampler), size=batch_size)
        return to_batch(sampler.sample(idx), self.normalizer, self.config.env.action_key, self.device)

    # ----------------------------------------------------------------- state
    def policy(self) -> Policy:
        """The EMA network as an acting policy (shares weights; no copy)."""
        return Policy(self.ema.model, self.normalizer, self.objective, self.config, self.obs_shapes, self.action_dim, self.device)

    def save(self) -> None:
        meta = {"step": self.step, "dataset": str(self.dataset_path)}
        save_policy(self.run_dir / POLICY_FILE, self.ema.model, self.normalizer, self.config, self.obs_shapes, self.action_dim, meta)
        optim_tensors, optim_meta = optimizer_to_tensors(self.optimizer)
        tensors = {
            **prefixed("net", self.network.state_dict()),
            **prefixed("ema", self.ema.model.state_dict()),
            **prefixed("optim", optim_tensors),
            "rng.torch": torch.get_rng_state(),
            "rng.generator": self.generator.get_state(),
        }
        train_meta = {
            **meta,
            "ema_step": self.ema.step,
            "optimizer": optim_meta,
            "numpy_rng": self.rng.bit_generator.state,
            "config": to_dict(self.config),
        }
        save_tensors(self.run_dir / TRAIN_STATE_FILE, tensors, train_meta)

    def load_train_state(self) -> None:
        path = self.run_dir / TRAIN_STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"train.resume: no {TRAIN_STATE_FILE} in run_dir {self.run_dir}")
        tensors, meta = load_tensors(path)
        self.network.load_state_dict(unprefixed("net", tensors))
        self.ema.model.load_state_dict(unprefixed("ema", tensors))
        self.ema.step = meta["ema_step"]
        optimizer_from_tensors(self.optimizer, unprefixed("optim", tensors), meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        self.generator.set_state(tensors["rng.generator"])
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.step = meta["step"]
        print(f"resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ loop
    def train_step(self) -> dict[str, float]:
        tc = self.config.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, tc.lr, tc.warmup_steps, tc.num_steps)
        obs, actions = self.sample_batch(self.train_sampler, tc.batch_size, self.rng)
        self.network.train()
        loss, metrics = self.objective.loss(self.network, actions, obs, target_net=self.ema.model, generator=self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.network.parameters(), tc.grad_clip))
        self.optimizer.step()
        self.ema.update(self.network)
        self.step += 1
        return metrics

    @torch.no_grad()
    def validation_loss(self, n_batches: int = 4) -> float | None:
        """EMA network's loss on held-out episodes, with fixed noise so successive values compare."""
        if self.val_sampler is None:
            return None
        rng = np.random.default_rng(0)
        generator = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(n_batches):
            obs, actions = self.sample_batch(self.val_sampler, self.config.train.batch_size, rng)
            loss, _ = self.objective.loss(self.ema.model, actions, obs, target_net=self.ema.model, generator=generator)
            losses.append(loss.item())
        return float(np.mean(losses))

    def fit(self) -> Path:
        tc = self.config.train
        log_path = self.run_dir / "metrics.jsonl"
        n_params = sum(p.numel() for p in self.network.parameters())
        print(
            f"training {self.config.objective['name']} / {self.config.policy.backbone} ({n_params / 1e6:.2f}M params) "
            f"on {self.device}: {self.buffer.n_episodes} episodes, {len(self.train_sampler)} windows"
        )
        bar = tqdm(total=tc.num_steps, initial=self.step, desc="train", unit="step", disable=not self.progress)
        start = time.perf_counter()
        with open(log_path, "a") as log:
            while self.step < tc.num_steps:
                metrics = self.train_step()
                record = None
                if self.step % tc.log_every == 0 or self.step == tc.num_steps:
                    record = {"step": self.step, "lr": self.optimizer.param_groups[0]["lr"], **metrics}
                    bar.set_postfix(loss=f"{metrics['loss']:.4f}")
                if self.step % tc.val_every == 0 or self.step == tc.num_steps:
                    val = self.validation_loss()
                    if val is not None:
                        record = {**(record or {"step": self.step}), "val_loss": val}
                if tc.eval_every and self.step % tc.eval_every == 0 and self.step < tc.num_steps:
                    rows = evaluate_policy(
                        self.policy(), self.config.env.name, [1], tc.periodic_eval_episodes,
                        latency_calls=0, progress=False,
                    )
                    record = {**(record or {"step": self.step}), "eval_score_1step": rows[0]["score"]}
                    tqdm.write(f"step {self.step}: " + format_row(rows[0]))
                if record is not None:
                    record["elapsed_s"] = time.perf_counter() - start
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                if self.step % tc.checkpoint_every == 0 or self.step == tc.num_steps:
                    self.save()
                bar.update(1)
        bar.close()
        print(f"trained {tc.num_steps} steps in {time.perf_counter() - start:.0f}s; checkpoint {self.run_dir / POLICY_FILE}")
        return self.run_dir / POLICY_FILE

    def final_evaluation(self) -> dict[str, Path]:
        tc = self.config.train
        if not tc.eval_episodes or not tc.eval_steps:
            return {}
        print(f"evaluating at steps {list(tc.eval_steps)} on {tc.eval_episodes} test seeds")
        rows = evaluate_policy(
            self.policy(), self.config.env.name, list(tc.eval_steps), tc.eval_episodes,
            n_videos=2, video_dir=self.run_dir / "eval" / "videos", progress=self.progress,
        )
        paths = write_report(
            self.run_dir / "eval",
            rows,
            {"checkpoint": str(self.run_dir / POLICY_FILE), "env": self.config.env.name, "step": self.step,
             "config": to_dict(self.config)},
            title=f"{self.config.env.name} · {self.config.objective['name']} · step {self.step}",
        )
        print(markdown_table(rows))
        return paths


def run(config: RunConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Train and evaluate; returns the paths of everything written."""
    run_dir = Path(run_dir)
    print(f"run folder: {run_dir.resolve()}")
    trainer = Trainer(config, run_dir, progress=progress)
    write_json(run_dir / "config.json", to_dict(config))
    checkpoint = trainer.fit()
    paths = {"checkpoint": checkpoint, "train_state": run_dir / TRAIN_STATE_FILE, "metrics": run_dir / "metrics.jsonl"}
    paths.update(trainer.final_evaluation())
    print(f"run folder: {run_dir.resolve()}")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return paths


@hydra.main(config_path=str(config_dir()), config_name="train", version_base=None)
def main(cfg: DictConfig) -> None:
    config = load_config(cfg)
    run_dir = config.run_dir or HydraConfig.get().runtime.output_dir
    run(config, run_dir)


if __name__ == "__main__":
    main()
