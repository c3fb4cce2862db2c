"""Image encoders for camera observations, in plain torch (torchvision does not load beside the CPU torch here).

One camera's frames (N, H, W, 3), normalized to [-1, 1] and channels last as stores and envs keep them,
become (N, feature_dim) features: crop -> convolutional trunk -> spatial-softmax keypoints -> linear.
This is Diffusion Policy's (and robomimic's) image encoder: a ResNet-18 with GroupNorm in place of
BatchNorm (batch statistics would differ between training batches and one acting frame) and a
spatial softmax in place of global pooling, so that features say *where* things are. Trained from
scratch: no weights can be downloaded.

Two trunks by name (``policy.vision.encoder``): ``resnet18``, the reference size, and ``small``, a
four-conv trunk cheap enough to train on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..utils.checks import at_least

GN_GROUP_WIDTH = 16  # channels per GroupNorm group, as Diffusion Policy's BatchNorm -> GroupNorm swap uses


@dataclass
class VisionConfig:
    encoder: str = "small"  # trunk: "small" (CPU default) or "resnet18" (Diffusion Policy's size)
    num_kp: int = 32  # spatial-softmax keypoints per camera (robomimic's name and Diffusion Policy's 32)
    feature_dim: int = 64  # features per camera and frame, after a linear layer on the keypoints' coordinates
    # side of the crop as a share of the image's: random crops while training, the centre crop when
    # acting (0.875: Diffusion Policy's 84 of 96 on Push-T); 1.0: no crop
    crop_ratio: float = 0.875
    share: bool = False  # one encoder for every camera (else one per camera, as Diffusion Policy)

    def __post_init__(self) -> None:
        if self.encoder not in TRUNKS:
            raise ValueError(f"policy.vision.encoder: expected one of {sorted(TRUNKS)}, got {self.encoder!r}")
        at_least("policy.vision", self, 1, "num_kp", "feature_dim")
        if not 0.0 < self.crop_ratio <= 1.0:
            raise ValueError(f"policy.vision.crop_ratio: expected a share of the image side in (0, 1], got {self.crop_ratio}")


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(max(1, channels // GN_GROUP_WIDTH), channels)


# ---------------------------------------------------------------------------------------------- trunks
def small_trunk() -> tuple[nn.Module, int]:
    """Four 3x3 convolutions, three of them strided: an 84-pixel crop -> an 11x11 map of 64 channels.
    Chosen by its training-step cost on 2 CPU cores among a few such stacks (docs/results/image_obs.md)."""
    layers: list[nn.Module] = []
    for c_in, c_out, stride in ((3, 16, 2), (16, 32, 2), (32, 64, 2), (64, 64, 1)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride, padding=1), group_norm(c_out), nn.ReLU()]
    return nn.Sequential(*layers), 64


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block, with GroupNorm."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False)
        self.norm1 = group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, padding=1, bias=False)
        self.norm2 = group_norm(c_out)
        self.skip = (
            nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), group_norm(c_out))
            if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(y)) + self.skip(x))


def resnet18_trunk() -> tuple[nn.Module, int]:
    """ResNet-18 without its pooling and classifier: an 84-pixel crop -> a 3x3 map of 8 * 64 channels.
    Four stages of two blocks; each stage after the first halves the map and doubles the channels."""
    width = 64
    layers: list[nn.Module] = [nn.Conv2d(3, width, 7, 2, padding=3, bias=False), group_norm(width), nn.ReLU(), nn.MaxPool2d(3, 2, padding=1)]
    c_in = width
    for stage in range(4):
        c_out = width * 2**stage
        layers += [BasicBlock(c_in, c_out, 1 if stage == 0 else 2), BasicBlock(c_out, c_out, 1)]
        c_in = c_out
    return nn.Sequential(*layers), c_in


TRUNKS: dict[str, Callable[[], tuple[nn.Module, int]]] = {"small": small_trunk, "resnet18": resnet18_trunk}


# ------------------------------------------------------------------------------------- crop and pooling
def crop_size(ratio: float, height: int, width: int) -> tuple[int, int]:
    return max(1, round(ratio * height)), max(1, round(ratio * width))


class Crop(nn.Module):
    """Square crops of ``ratio`` of the side: a random one per image in training mode (augmentation),
    the centre one in eval mode (acting), so the network always sees the same size."""

    def __init__(self, ratio: float) -> None:
        super().__init__()
        self.ratio = ratio

    def size(self, height: int, width: int) -> tuple[int, int]:
        return crop_size(self.ratio, height, width)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (N, C, H, W) -> (N, C, h, w)
        n, _, height, width = images.shape
        h, w = self.size(height, width)
        if (h, w) == (height, width):
            return images
        if not self.training:
            top, left = (height - h) // 2, (width - w) // 2
            return images[:, :, top : top + h, left : left + w]
        # offsets from the CPU generator on any device: it is the one a train state saves and restores
        tops = torch.randint(0, height - h + 1, (n,)).to(images.device)
        lefts = torch.randint(0, width - w + 1, (n,)).to(images.device)
        rows = (tops[:, None] + torch.arange(h, device=images.device))[:, None, :, None]  # (N, 1, h, 1)
        cols = (lefts[:, None] + torch.arange(w, device=images.device))[:, None, None, :]  # (N, 1, 1, w)
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        channels = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
        return images[batch, channels, rows, cols]


class SpatialSoftmax(nn.Module):
    """Feature map (N, C, H, W) -> K keypoints (N, 2K): a 1x1 conv makes K maps, each map's softmax over
    its pixels is a distribution, and a keypoint is that distribution's expected (x, y), each in [-1, 1]
    (x left to right, y top to bottom), ordered (x_0, y_0, x_1, y_1, ...)."""

    def __init__(self, channels: int, num_kp: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, num_kp, 1, bias=False)  # a bias would shift a map, which its softmax ignores

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        maps = self.project(features)  # (N, K, H, W)
        n, k, height, width = maps.shape
        weights = torch.softmax(maps.flatten(2), dim=-1).view(n, k, height, width)
        ys = torch.linspace(-1.0, 1.0, height, device=maps.device, dtype=maps.dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=maps.device, dtype=maps.dtype)
        x = (weights.sum(2) * xs).sum(-1)  # (N, K): the column marginal's mean
        y = (weights.sum(3) * ys).sum(-1)
        return torch.stack([x, y], dim=-1).flatten(1)  # (N, 2K)


class ImageEncoder(nn.Module):
    """One camera: (N, H, W, 3) images in [-1, 1] -> (N, feature_dim)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        self.crop = Crop(config.crop_ratio)
        self.trunk, channels = TRUNKS[config.encoder]()
        self.pool = SpatialSoftmax(channels, config.num_kp)
        self.out = nn.Linear(2 * config.num_kp, config.feature_dim)
        self.feature_dim = config.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.crop(images.permute(0, 3, 1, 2))  # channels last (as stored) -> (N, 3, h, w)
        return self.out(self.pool(self.trunk(x)))


def check_image_shape(key: str, shape: tuple[int, ...], config: VisionConfig) -> None:
    """An rgb key is (H, W, 3); refuse, when the policy is built, one whose crop the trunk shrinks to a
    single pixel: a spatial softmax over one pixel gives the same keypoint for every image."""
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"obs_keys: an image key is (height, width, 3) RGB, got {key!r} with shape {tuple(shape)}")
    h, w = crop_size(config.crop_ratio, *shape[:2])
    with torch.device("meta"):  # shapes only: no weights are made, nothing is computed
        trunk, _ = TRUNKS[config.encoder]()
        map_h, map_w = trunk(torch.empty(1, 3, h, w)).shape[-2:]
    if min(map_h, map_w) < 2:
        raise ValueError(f"obs_keys: {key!r} is {shape[0]}x{shape[1]}, cropped to {h}x{w} (policy.vision.crop_ratio="
                         f"{config.crop_ratio}); policy.vision.encoder={config.encoder!r} makes a {map_h}x{map_w} map of it, "
                         "expected at least 2x2 for its spatial softmax: use larger images (or crop_ratio up to 1.0)")
