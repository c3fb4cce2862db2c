"""The image path's trainer and evaluation: a class-conditional DiT under any Euler objective, for parity with the paper.

The same training loop (``training.TrainLoop``), objective modules, EMA and checkpoints as the
policies; only the data and the evaluation differ. The evaluation samples ``eval.samples_per_class``
images per class at each of ``eval.steps`` and reports the Fréchet distance to the train split, the
class accuracy of the samples (both under a fixed feature classifier, whose test accuracy is
reported), and the time per image; sample grids are saved as PNG.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import EVAL_DIR, MODEL_FILE, check_finite, load_tensors, prefixed, resolve_checkpoint, save_tensors, unprefixed
from ..config import ImageDataConfig, ImageRunConfig, load_config, to_dict
from ..objectives import Objective, build_objective, check_steps
from ..objectives.base import GuidanceConfig
from ..training import distributed
from ..training.loop import TrainLoop, train_and_evaluate
from ..utils.io import atomic_write, write_json, write_text
from .data import ImageDataset, load_digits, load_image_folder
from .dit import DiT
from .metrics import FeatureSpace, accuracy, feature_stats, frechet_distance, train_classifier


def load_dataset(config: ImageDataConfig) -> ImageDataset:
    if config.name == "digits":
        return load_digits(config.image_size, config.test_fraction, config.seed)
    return load_image_folder(config.root, config.image_size, config.channels, config.test_fraction, config.seed)


def build_dit(config: ImageRunConfig, data_shape: tuple[int, int, int], num_classes: int) -> DiT:
    channels, size, _ = data_shape
    return DiT(size, channels, num_classes, **dataclasses.asdict(config.model))


class ImageTrainer(TrainLoop):
    artifact_file = MODEL_FILE

    def __init__(self, config: ImageRunConfig, run_dir: str | Path, progress: bool = True) -> None:
        objective = build_objective(config.objective)
        check_steps("eval.steps", config.eval.steps, objective)  # before anything is made on disk
        super().__init__(config, run_dir, progress)
        self.data = load_dataset(config.dataset)
        self.setup(objective, build_dit(config, self.data.shape, self.data.num_classes))

    def sample_batch(self, split: str, batch_size: int, rng: np.random.Generator):
        images, labels = (
            (self.data.train_images, self.data.train_labels) if split == "train" else (self.data.test_images, self.data.test_labels)
        )
        idx = torch.from_numpy(rng.integers(0, len(images), size=batch_size))
        return images[idx].to(self.device), labels[idx].to(self.device)

    def has_validation(self) -> bool:
        return len(self.data.test_images) > 0

    def save_artifact(self, meta: dict[str, Any]) -> Path:
        return save_tensors(
            self.run_dir / MODEL_FILE,
            prefixed("net", self.ema.model.state_dict()),
            {**meta, "config": to_dict(self.config), "shape": list(self.data.shape), "class_names": self.data.class_names},
        )

    def data_summary(self) -> str:
        c, s, _ = self.data.shape
        return (
            f"{self.config.dataset.name} {len(self.data.train_images)} train images {c}x{s}x{s}, "
            f"{self.data.num_classes} classes"
        )

    def final_evaluation(self) -> dict[str, Path]:
        eval_dir = self.run_dir / EVAL_DIR
        report = evaluate_image_model(self.ema.model.eval(), self.objective, self.config, self.data, eval_dir, self.progress)
        report.update({"checkpoint": str(self.run_dir / MODEL_FILE), "step": self.step, "config": to_dict(self.config)})
        table = image_table(report) + "\n\n" + report_footer(report)
        print(table)
        return {
            "json": write_json(eval_dir / "eval.json", report),
            "markdown": write_text(eval_dir / "eval.md", table + "\n"),
            "grids": eval_dir / "grids",
        }


def load_image_model(path: str | Path, device: str = "cpu") -> tuple[DiT, Objective, ImageRunConfig, dict]:
    """(EMA DiT in eval mode, its objective, its config, metadata) from a ``model.safetensors`` or run folder."""
    file = resolve_checkpoint(path, MODEL_FILE)
    tensors, meta = load_tensors(file)
    check_finite(file, tensors)
    config = load_config(meta["config"], ImageRunConfig)
    objective = build_objective(config.objective)
    net = build_dit(config, tuple(meta["shape"]), len(meta["class_names"]))
    net.load_state_dict(unprefixed("net", tensors), strict=True)
    return net.to(device).eval().requires_grad_(False), objective, config, meta


@torch.no_grad()
def generate(
    net: DiT, objective: Objective, labels: torch.Tensor, steps: int, seed: int = 0, batch_size: int = 500
) -> torch.Tensor:
    """Images (N, C, S, S) in [-1, 1] for class ``labels`` (N,), sampled with ``steps`` steps."""
    objective.validate_steps(steps)
    generator = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    shape = (net.channels, net.image_size, net.image_size)
    out = []
    for i in range(0, len(labels), batch_size):
        cond = net.encode(labels[i : i + batch_size].to(device))
        out.append(objective.sample(net, cond, shape, steps, generator).cpu())
    return torch.cat(out).clamp(-1, 1)


def is_guided(objective: Objective, steps: int) -> bool:
    """Whether ``objective.sample`` applies classifier-free guidance at this step count."""
    return isinstance(objective.config, GuidanceConfig) and objective.config.guided_at(steps)


def save_grid(path: Path, images: torch.Tensor, rows: int, scale: int = 4) -> Path:
    """Save images (rows * cols, C, S, S) in [-1, 1] as one PNG grid, one row per class, enlarged ``scale``x."""
    from PIL import Image

    n, c, s, _ = images.shape
    cols = n // rows
    pixels = ((images[: rows * cols].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    grid = pixels.reshape(rows, cols, c, s, s).permute(0, 3, 1, 4, 2).reshape(rows * s, cols * s, c).numpy()
    grid = np.kron(grid, np.ones((scale, scale, 1), dtype=np.uint8))
    image = Image.fromarray(grid[..., 0] if c == 1 else grid)
    return atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def evaluate_image_model(
    net: DiT, objective: Objective, config: ImageRunConfig, data: ImageDataset, out_dir: Path, progress: bool = True
) -> dict[str, Any]:
    """Fréchet distance, class accuracy and time per image at every ``eval.steps``; grids under ``out_dir/grids``."""
    ec = config.eval
    check_steps("eval.steps", ec.steps, objective)  # again: a loaded model is evaluated without a trainer
    print(f"training the feature classifier ({ec.classifier_epochs} epochs, seed {ec.seed})")
    classifier, test_acc = train_classifier(data, ec.classifier_epochs, ec.seed)
    features = FeatureSpace(classifier, ec.feature_extractor)
    ref = feature_stats(features(data.train_images))
    floor = frechet_distance(*feature_stats(features(data.test_images)), *ref)
    k = data.num_classes
    labels = torch.arange(k).repeat_interleave(ec.samples_per_class)  # (K * n,) class-balanced
    rows = []
    for steps in tqdm(ec.steps, desc="sample", unit="budget", disable=not progress):
        start = time.perf_counter()
        images = generate(net, objective, labels, steps, ec.seed, ec.batch_size)
        seconds = time.perf_counter() - start
        fd = frechet_distance(*feature_stats(features(images)), *ref)
        row = {
            "steps": steps,
            "frechet_distance": fd,
            "class_accuracy": accuracy(classifier, images, labels),
            "ms_per_image": 1000 * seconds / len(labels),
            "guided": is_guided(objective, steps),
        }
        rows.append(row)
        per_class = images.reshape(k, ec.samples_per_class, *images.shape[1:])[:, : ec.grid_per_class]
        save_grid(out_dir / "grids" / f"steps_{steps:03d}.png", per_class.reshape(-1, *images.shape[1:]), rows=k)
        tqdm.write(
            f"steps={steps:>3}  FD={fd:8.3f}  accuracy={row['class_accuracy']:.3f}  {row['ms_per_image']:.2f} ms/image"
        )
    return {
        "rows": rows,
        "feature_space": features.name,
        "classifier_test_accuracy": test_acc,
        "real_test_vs_train_fd": floor,
        "n_generated": len(labels),
        "n_reference": len(data.train_images),
    }


def image_table(report: dict[str, Any], method: str | None = None) -> str:
    """Markdown table of one evaluation (``method`` adds a first column)."""
    head = "| " + ("method | " if method else "") + "steps (NFE) | Fréchet distance | class accuracy | ms / image | CFG |"
    sep = "|" + ("---|" if method else "") + "---:|---:|---:|---:|---|"
    lines = [head, sep]
    for r in report["rows"]:
        prefix = f"| {method} " if method else ""
        lines.append(
            f"{prefix}| {r['steps']} | {r['frechet_distance']:.3f} | {r['class_accuracy']:.3f} | {r['ms_per_image']:.2f} | "
            f"{'yes' if r['guided'] else 'no'} |"
        )
    return "\n".join(lines)


def report_footer(report: dict[str, Any]) -> str:
    return (
        f"Features: {report['feature_space']}; feature classifier test accuracy {report['classifier_test_accuracy']:.3f}. "
        f"Fréchet distance of {report['n_generated']} generated images to the {report['n_reference']} train images; "
        f"real held-out test images score {report['real_test_vs_train_fd']:.3f} (a floor, from fewer images)."
    )


def run_image(config: ImageRunConfig, run_dir: str | Path, progress: bool = True) -> dict[str, Path]:
    """Train (or resume) and evaluate one image model; returns the paths of everything written."""
    world = distributed.ranks_from_env().world_size
    if world > 1:  # its data is not sharded nor its run folder shared across ranks: one process only
        raise ValueError(f"torchrun: the image (DiT) trainer trains in one process, got WORLD_SIZE={world}")
    return train_and_evaluate(lambda: ImageTrainer(config, run_dir, progress=progress), config, run_dir)
