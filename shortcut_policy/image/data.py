"""Labelled image datasets for the image (DiT) path: scikit-learn's digits offline, or a folder of images.

Both return float tensors in [-1, 1] (N, C, S, S) and integer labels (N,), split by a fixed seed,
stratified by class, into train and test parts. The test part is held out from the generator and
from the feature classifier's training, and gives the classifier's reported accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class ImageDataset:
    train_images: torch.Tensor  # (N, C, S, S) float in [-1, 1]
    train_labels: torch.Tensor  # (N,) long
    test_images: torch.Tensor
    test_labels: torch.Tensor
    class_names: list[str]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test): ``test_fraction`` of each class (at least one where a class has two or more)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_fraction * len(idx)))
        if test_fraction > 0 and len(idx) > 1:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (antialiased when shrinking) resize of (N, C, H, W) to (N, C, size, size)."""
    if images.shape[-2:] == (size, size):
        return images
    shrink = size < max(images.shape[-2:])
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _finish(images01: torch.Tensor, labels: np.ndarray, names: list[str], size: int, test_fraction: float, seed: int) -> ImageDataset:
    images = resize(images01, size).clamp(0, 1) * 2 - 1
    train, test = stratified_split(labels, test_fraction, seed)
    labels_t = torch.as_tensor(labels, dtype=torch.long)
    return ImageDataset(images[train], labels_t[train], images[test], labels_t[test], names)


def load_digits(image_size: int = 8, test_fraction: float = 0.2, seed: int = 0) -> ImageDataset:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels, shipped with the package), one channel."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    return _finish(images, np.asarray(digits.target), [str(i) for i in range(10)], image_size, test_fraction, seed)


def load_image_folder(
    root: str | Path, image_size: int, channels: int = 3, test_fraction: float = 0.1, seed: int = 0
) -> ImageDataset:
    """One subfolder per class (sorted names are the classes), images of any size, resized to a square."""
    from PIL import Image

    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset.root: expected a folder with one subfolder per class, got {root}")
    if channels not in (1, 3):
        raise ValueError(f"dataset.channels: expected 1 or 3, got {channels}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"dataset.root: expected one subfolder per class in {root}, found none")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"dataset.root: class folder {root / name} holds no images ({sorted(IMAGE_SUFFIXES)})")
        for file in files:
            with Image.open(file) as img:
                img = img.convert("L" if channels == 1 else "RGB").resize((image_size, image_size), Image.BICUBIC)
                array = np.asarray(img, dtype=np.float32).reshape(image_size, image_size, channels) / 255.0
            images.append(torch.from_numpy(array).permute(2, 0, 1))
            labels.append(label)
    return _finish(torch.stack(images), np.asarray(labels), classes, image_size, test_fraction, seed)
