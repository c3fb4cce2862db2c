"""The one training loop: objective(network) -> AdamW (warmup + cosine) -> EMA -> atomic checkpoints -> resume.

It knows nothing about robots or images. A task subclasses :class:`TrainLoop` and supplies the data
(``sample_batch``), what is saved for inference (``save_artifact``) and, optionally, a periodic
evaluation; the policy trainer (``trainer.py``) and the image trainer (``image/trainer.py``) are
the two tasks, so every objective, EMA and checkpoint feature serves both.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from tqdm import tqdm

from ..checkpoint import (
    EVAL_DIR,
    METRICS_FILE,
    MODEL_FILE,
    TRAIN_STATE_FILE,
    check_finite,
    load_meta,
    load_tensors,
    mismatch_detail,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prefixed,
    save_tensors,
    unprefixed,
)
from ..config import TrainConfig
from ..objectives import Objective
from ..utils.device import resolve_device
from ..utils.io import complete_lines, write_json, write_text
from . import distributed
from .ema import EMA
from .resume import CONFIG_FILE, RESUMES_FILE, RUN_FILES, changes_from_saved, check_resume, listed, record_resume
from .run_folder import RunFolder


def lr_at(step: int, base_lr: float, warmup: int, total: int) -> float:
    """Linear warmup to ``base_lr``, then cosine decay to zero at ``total``."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))


class TrainLoop:
    """Seeding, optimizer, EMA, train state and the loop; subclasses build data and network, then call ``setup``.

    ``self.config`` is the subclass's run config dataclass (written into every checkpoint) and must
    have a ``train`` field of type :class:`TrainConfig`.
    """

    artifact_file = MODEL_FILE  # what save_artifact writes; subclasses name their own

    def __init__(self, config: Any, run_dir: str | Path, progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)  # made by the first write (io.atomic_write), so a refusal here leaves nothing
        self.progress = progress
        tc: TrainConfig = config.train
        # under torchrun: this process's rank and device; every rank builds the same initial network
        # (DDP starts them all from rank 0's anyway), then draws its own batches and noise (setup)
        self.ranks, self.device = distributed.init(resolve_device(tc.device, "train.device"))
        torch.manual_seed(tc.seed)
        self.rng = np.random.default_rng(tc.seed)
        self.generator = torch.Generator().manual_seed(tc.seed)

    def setup(self, objective: Objective, network: nn.Module) -> None:
        """Attach the objective and the (freshly built) network; make the EMA and optimizer; resume if asked."""
        tc: TrainConfig = self.config.train
        self.objective = objective
        self.network = network.to(self.device)
        self.ema = EMA(self.network, tc.ema_power, tc.ema_max_decay)
        self.optimizer = torch.optim.AdamW(
            self.network.parameters(), lr=tc.lr, betas=(0.95, 0.999), weight_decay=tc.weight_decay
        )
        self.step = 0
        # what the run has spent, kept in the train state so that a resume counts on from its checkpoint:
        # samples drawn (over all ranks), wall seconds (training, evaluations, checkpoints), of which
        # periodic evaluations
        self.samples, self.wall_s, self.eval_s = 0, 0.0, 0.0
        # the loss as one module call: inside DistributedDataParallel under torchrun
        self.loss_module = distributed.wrap(objective, self.network, self.ranks, self.device)
        if tc.resume and (self.run_dir / TRAIN_STATE_FILE).is_file():
            self.load_train_state()
        elif tc.resume:  # killed before its first checkpoint: the run starts again, from its seed
            print(f"train.resume: no {TRAIN_STATE_FILE} in {self.run_dir} yet: training from step 0")
        distributed.check_same_step(self.step, self.ranks)
        if not self.ranks.main:  # dropout and image crops: each rank its own draws (rank 0's stay a plain run's)
            self.reseed_rank()

    def reseed_rank(self) -> None:
        """A rank other than 0 draws from (seed, rank, step): the train state holds rank 0's generators only."""
        seed = int(np.random.SeedSequence([self.config.train.seed, self.ranks.rank, self.step]).generate_state(1)[0])
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    # ----------------------------------------------------------- task hooks
    def sample_batch(self, split: str, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, Any]:
        """(x1 (B, *shape) normalized clean samples, conditioning input) from split 'train' or 'val'."""
        raise NotImplementedError

    def has_validation(self) -> bool:
        return False

    def save_artifact(self, meta: dict[str, Any]) -> Path:
        """Write what inference needs (EMA weights, config, ...) to ``run_dir / artifact_file``."""
        raise NotImplementedError

    def periodic_eval(self) -> dict[str, float] | None:
        """Metrics to log every ``train.eval_every`` steps (None: nothing)."""
        return None

    def after_periodic_eval(self, log_path: Path) -> None:
        """Called once a periodic evaluation is in ``log_path`` (the learning curve is redrawn here)."""

    def model_name(self) -> str:
        return type(self.network).__name__

    def data_summary(self) -> str:
        return ""

    def describe(self) -> str:
        n_params = sum(p.numel() for p in self.network.parameters())
        return f"{self.config.objective['name']} / {self.model_name()} ({n_params / 1e6:.2f}M params): {self.data_summary()}"

    def final_evaluation(self) -> dict[str, Path]:
        """Evaluate the trained EMA network; returns the paths of the reports written (none by default)."""
        return {}

    # ----------------------------------------------------------------- state
    def save(self) -> None:
        if not self.ranks.main:  # rank 0 writes; the others hold the same weights
            return
        if not all(bool(torch.isfinite(p).all()) for p in self.network.parameters()):  # grad_clip=0 checks no gradient
            self.stop_if_not_finite("network weights", math.nan)
        meta = {"step": self.step, **self.artifact_meta()}
        self.save_artifact(meta)
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
            "spent": {"samples": self.samples, "wall_s": self.wall_s, "eval_s": self.eval_s},
            "config": dataclasses.asdict(self.config),
        }
        save_tensors(self.run_dir / TRAIN_STATE_FILE, tensors, train_meta)

    def artifact_meta(self) -> dict[str, Any]:
        """Extra JSON metadata for both checkpoint files (e.g. which dataset was used)."""
        return {}

    def load_train_state(self) -> None:
        path = self.run_dir / TRAIN_STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"train.resume: no {TRAIN_STATE_FILE} in run_dir {self.run_dir}")
        tensors, meta = load_tensors(path)
        check_finite(path, tensors)
        self.check_saved_settings(path, meta)
        try:
            self.network.load_state_dict(unprefixed("net", tensors))
            self.ema.model.load_state_dict(unprefixed("ema", tensors))
            self.ema.step = meta["ema_step"]
            optimizer_from_tensors(self.optimizer, unprefixed("optim", tensors), meta["optimizer"])
            torch.set_rng_state(tensors["rng.torch"])
            self.generator.set_state(tensors["rng.generator"])
            self.rng.bit_generator.state = meta["numpy_rng"]
            self.step = meta["step"]
            # a state saved before the run kept its spending: the samples its steps drew at today's ranks
            # and the wall time its metrics reach (``fit``)
            spent = meta.get("spent", {"samples": self.step * self.config.train.batch_size * self.ranks.world_size})
            self.samples, self.wall_s, self.eval_s = int(spent["samples"]), spent.get("wall_s"), float(spent.get("eval_s", 0.0))
        except (KeyError, RuntimeError, ValueError, TypeError) as err:  # an edited or foreign file
            raise ValueError(f"train.resume: {path} does not fit this run's network and optimizer "
                             f"({mismatch_detail(err)})") from err
        print(f"resumed from {path} at step {self.step}")

    def check_saved_settings(self, path: Path, meta: dict[str, Any]) -> None:
        """Refuse to go on from a state saved with settings a resumed run may not change (the one check of
        saved settings, ``changes_from_saved``): finishing a run with another objective or data would
        silently mix two trainings."""
        if "config" not in meta:
            return
        try:
            _, refused = changes_from_saved(meta["config"], self.config)
        except (ValueError, TypeError, OmegaConfBaseException) as err:
            raise ValueError(f"train.resume: {path}: its saved config does not load ({err})") from None
        if refused:
            raise ValueError(f"train.resume: {path} was trained with other values of {listed(refused)}; pass the saved "
                             "values or train in a new run_dir")

    # ------------------------------------------------------------------ loop
    def train_step(self) -> dict[str, float]:
        tc: TrainConfig = self.config.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.step, tc.lr, tc.warmup_steps, tc.num_steps)
        x1, cond_input = self.sample_batch("train", tc.batch_size, self.rng)
        self.network.train()
        loss, metrics = self.loss_module(x1, cond_input, target_net=self.ema.model, generator=self.generator)
        self.stop_if_not_finite("loss", loss.item())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.network.parameters(), tc.grad_clip))
            self.stop_if_not_finite("gradient norm", metrics["grad_norm"])
        self.optimizer.step()
        self.ema.update(self.network)
        self.step += 1
        self.samples += tc.batch_size * self.ranks.world_size
        return metrics

    def stop_if_not_finite(self, what: str, value: float) -> None:
        """Stop training at a NaN or inf, before it reaches the weights: the checkpoints on disk are the
        last good ones, and nothing non-finite is logged."""
        if not math.isfinite(value):
            saved = load_meta(self.run_dir / TRAIN_STATE_FILE).get("step") if (self.run_dir / TRAIN_STATE_FILE).is_file() else None
            kept = f"the checkpoints of step {saved} in {self.run_dir} are kept" if saved is not None else "no checkpoint was written"
            raise FloatingPointError(
                f"train: non-finite {what} ({value}) at step {self.step + 1}; training stopped and {kept}. "
                f"A learning rate too high (train.lr={self.config.train.lr}) is the usual cause"
            )

    @torch.no_grad()
    def validation_loss(self, n_batches: int = 4) -> float | None:
        """EMA network's loss on held-out data, with fixed noise so successive values compare."""
        if not self.has_validation():
            return None
        rng = np.random.default_rng(0)
        generator = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(n_batches):
            x1, cond_input = self.sample_batch("val", self.config.train.batch_size, rng)
            _, metrics = self.objective.loss(self.ema.model, x1, cond_input, target_net=self.ema.model, generator=generator)
            losses.append(metrics["loss"])  # the reported loss (MeanFlow's before its adaptive weights)
        value = float(np.mean(losses))
        self.stop_if_not_finite("validation loss (EMA weights)", value)
        return value

    def start_metrics_log(self, path: Path) -> float:
        """Keep the records up to the step training starts from: none for a new run, so a retrained
        run_dir holds only this run's records; for a resumed run, those up to its checkpoint, dropping
        the ones logged after it before a stop (they are logged again as training repeats them).
        Returns the wall time those records reach (what a train state saved without it goes on from)."""
        kept = [line + "\n" for line in (complete_lines(path) if self.step else [])
                if (step := metrics_step(line)) is not None and step <= self.step]
        write_text(path, "".join(kept))
        return max((json.loads(line).get("elapsed_s", 0.0) for line in kept), default=0.0)

    def fit(self, on_start: Callable[[], None] | None = None) -> Path:
        """Train to ``train.num_steps``; ``on_start`` is called once training is about to begin."""
        tc: TrainConfig = self.config.train
        if not self.ranks.main:  # the other ranks only take steps (each one an all-reduce with rank 0's)
            while self.step < tc.num_steps:
                self.train_step()
            return self.run_dir / self.artifact_file
        log_path = self.run_dir / METRICS_FILE
        ranks = f", rank 0 of {self.ranks.world_size} (batch {tc.batch_size} per rank)" if self.ranks.active else ""
        print(f"training {self.describe()} on {self.device}{ranks}")
        if not self.step and not tc.resume:  # a new run (train.overwrite): nothing of the one it replaces stays
            for name in (TRAIN_STATE_FILE, self.artifact_file, RESUMES_FILE):
                (self.run_dir / name).unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / EVAL_DIR, ignore_errors=True)
        logged_s = self.start_metrics_log(log_path)
        if self.wall_s is None:
            self.wall_s = logged_s
        if on_start is not None:
            on_start()
        bar = tqdm(total=tc.num_steps, initial=self.step, desc="train", unit="step", disable=not self.progress)
        start, wall_at_start = time.perf_counter(), self.wall_s
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
                evaluated = None
                if tc.eval_every and (self.step % tc.eval_every == 0 or self.step == tc.num_steps):  # the last is on the curve
                    began = time.perf_counter()
                    evaluated = self.periodic_eval()
                    self.eval_s += time.perf_counter() - began
                    if evaluated:
                        record = {**(record or {"step": self.step}), **evaluated}
                self.wall_s = wall_at_start + time.perf_counter() - start
                if record is not None:
                    # what the run has spent, counted on across resumes from the checkpoint's figures (the
                    # time between a checkpoint and a stop is spent again, and counted once)
                    record.update(samples=self.samples, elapsed_s=self.wall_s, **({"eval_s": self.eval_s} if tc.eval_every else {}))
                    log.write(json.dumps(record, allow_nan=False) + "\n")  # strict JSON: no NaN or Infinity
                    log.flush()
                if evaluated:
                    self.after_periodic_eval(log_path)
                if self.step % tc.checkpoint_every == 0 or self.step == tc.num_steps:
                    self.save()
                bar.update(1)
        bar.close()
        artifact = self.run_dir / self.artifact_file
        print(f"trained {tc.num_steps} steps in {time.perf_counter() - start:.0f}s; checkpoint {artifact}")
        return artifact


def metrics_step(line: str) -> int | None:
    """The step of one ``metrics.jsonl`` line (None for a line that is not a record)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def train_and_evaluate(make_trainer: Callable[[], TrainLoop], config: Any, run_dir: str | Path) -> dict[str, Path]:
    """The shape of every training command: hold the run folder, build the trainer, train (or resume),
    evaluate, say where it all went. A new run never replaces one already in the folder unless
    ``train.overwrite``; a resumed one must keep what it was trained with (``check_resume``)."""
    run_dir = Path(run_dir)
    tc: TrainConfig = config.train
    ranks = distributed.ranks_from_env()
    if not ranks.main:  # under torchrun: rank 0 holds the folder and writes; this rank trains beside it
        if tc.resume:
            check_resume(run_dir, config)
        make_trainer().fit()
        return {}
    print(f"run folder: {run_dir.resolve()}")
    with RunFolder(run_dir) as folder:
        folder.refuse_existing_run(RUN_FILES, tc.resume, tc.overwrite)
        changed = check_resume(run_dir, config) if tc.resume else {}
        trainer = make_trainer()
        write_json(run_dir / CONFIG_FILE, dataclasses.asdict(config))
        resumed = (lambda: record_resume(run_dir, changed, trainer.step, tc.num_steps)) if tc.resume else None
        paths = {"checkpoint": trainer.fit(on_start=resumed), "train_state": run_dir / TRAIN_STATE_FILE, "metrics": run_dir / METRICS_FILE}
        paths.update(trainer.final_evaluation())
    print(f"run folder: {run_dir.resolve()}")
    for name, path in paths.items():
        print(f"  {name}: {path}")
    return paths
