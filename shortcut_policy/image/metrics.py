"""Sample quality for the image path: Fréchet distance in a fixed feature space, and class accuracy.

No Inception weights can be downloaded here, so the default feature space is that of a small CNN
classifier the project trains deterministically (fixed seed, fixed schedule) on the dataset's
train split; its test accuracy is reported beside every table, so a reader knows how good the
features are. A user who has the standard FID Inception network locally as TorchScript (for example
``inception-2015-12-05.pt``) passes its path as ``eval.feature_extractor`` to get the usual FID
features; nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageDataset

INCEPTION_SIZE = 299


class FeatureClassifier(nn.Module):
    """A small CNN: its penultimate layer (``features``) is the Fréchet feature space."""

    def __init__(self, channels: int, num_classes: int, feature_dim: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.GELU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.GELU(),
            nn.Conv2d(64, 64, 3, padding=1, stride=2), nn.GELU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(64, feature_dim), nn.GELU(),
        )
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, S, S) in [-1, 1] -> (B, feature_dim)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(data: ImageDataset, epochs: int = 30, seed: int = 0, batch_size: int = 64) -> tuple[FeatureClassifier, float]:
    """Train the feature classifier on the train split with a fixed seed; returns (eval-mode model, test accuracy)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = FeatureClassifier(data.shape[0], data.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    n = len(data.train_images)
    total = epochs * ((n + batch_size - 1) // batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=total)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(model(data.train_images[idx]), data.train_labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    model.eval().requires_grad_(False)
    return model, accuracy(model, data.test_images, data.test_labels)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    preds = torch.cat([model(images[i : i + batch_size]).argmax(-1) for i in range(0, len(images), batch_size)])
    return float((preds == labels.to(preds.device)).float().mean())


class FeatureSpace:
    """Maps images in [-1, 1] (B, C, S, S) to features (B, F): the classifier's, or a local TorchScript Inception's."""

    def __init__(self, classifier: FeatureClassifier, feature_extractor: str | Path = "") -> None:
        self.classifier = classifier
        self.extractor = None
        self.name = "classifier penultimate layer (64-d)"
        if feature_extractor:
            path = Path(feature_extractor).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"eval.feature_extractor: expected a TorchScript file, got missing path {path}")
            print(f"loading TorchScript {path}: torch.jit.load runs the code in it (eval.feature_extractor)")
            self.extractor = torch.jit.load(str(path), map_location="cpu").eval()
            self.name = f"TorchScript features from {path.name} (FID)"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 250) -> np.ndarray:
        out = []
        for i in range(0, len(images), batch_size):
            x = images[i : i + batch_size].float().cpu()
            if self.extractor is None:
                out.append(self.classifier.features(x))
                continue
            x = (x.clamp(-1, 1) + 1) * 127.5  # the FID Inception takes RGB in [0, 255] at 299 x 299
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
            out.append(self.extractor(x).reshape(len(x), -1))
        return torch.cat(out).double().numpy()


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F)."""
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features: expected an (N, F) array with N >= 2, got shape {features.shape}")
    return features.mean(0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^1/2), with the matrix root from symmetric eigendecompositions.

    tr((C1 C2)^1/2) equals the sum of the square roots of the eigenvalues of C1^1/2 C2 C1^1/2, which
    is symmetric positive semi-definite, so no complex parts or sqrtm iterations are needed.
    """
    w, v = np.linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    middle = root1 @ cov2 @ root1
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_root)
