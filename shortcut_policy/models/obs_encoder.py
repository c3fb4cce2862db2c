"""The observation encoder: normalized observation history -> one conditioning vector per sample."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import nn

from .vision import ImageEncoder, VisionConfig, check_image_shape

SHARED = "shared"  # the name of the one image encoder when policy.vision.share is set


def is_image(shape: Sequence[int]) -> bool:
    """Observation shapes by rank, as stores and checkpoints record them: 1-D or 2-D keys are low-dim
    (a 2-D one, like the (9, 2) keypoints of Diffusion Policy's Push-T store, is flattened per frame);
    3-D keys are (H, W, 3) camera images."""
    return len(shape) == 3


def check_obs_shapes(obs_shapes: Mapping[str, Sequence[int]], vision: VisionConfig) -> None:
    """Refuse a key the encoder cannot take: checked when a policy is built, and before a training run
    makes its demonstrations (from the env's shapes)."""
    for key, shape in obs_shapes.items():
        if is_image(shape):
            check_image_shape(key, tuple(shape), vision)
        elif len(shape) not in (1, 2):
            raise ValueError(
                f"obs_keys: expected 1-D or 2-D low-dim observations or (H, W, 3) images, got {key!r} with shape {tuple(shape)}"
            )


class ObsEncoder(nn.Module):
    """Encodes every key of every observation frame and concatenates them, as Diffusion Policy does.

    Input ``obs[key]``: (B, n_obs_steps, *shape_key). A low-dim key passes through flattened; a camera
    key (B, To, H, W, 3) goes through its image encoder (``policy.vision``) once per frame, as one batch
    of B * To images. Output (B, n_obs_steps * per_frame), frame-major (every key of frame 0 in
    ``obs_shapes``' order, then frame 1, ...), so that any backbone can view it as one token per frame.
    With no camera key the encoder has no parameters.
    """

    def __init__(self, obs_shapes: Mapping[str, Sequence[int]], n_obs_steps: int, vision: VisionConfig | None = None) -> None:
        super().__init__()
        vision = vision or VisionConfig()
        check_obs_shapes(obs_shapes, vision)
        self.keys = list(obs_shapes)
        cameras = [k for k, shape in obs_shapes.items() if is_image(shape)]
        # camera key -> the name of its encoder; a shared one is stored once (safetensors refuses tensors
        # saved under two names)
        self.encoder_of = {k: SHARED if vision.share else k for k in cameras}
        self.images = nn.ModuleDict({name: ImageEncoder(vision) for name in dict.fromkeys(self.encoder_of.values())})
        per_frame = {k: vision.feature_dim if k in self.encoder_of else math.prod(int(n) for n in shape)
                     for k, shape in obs_shapes.items()}
        self.out_dim = n_obs_steps * sum(per_frame.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self._frames(key, obs[key]) for key in self.keys], dim=-1).flatten(1)

    def _frames(self, key: str, x: torch.Tensor) -> torch.Tensor:  # (B, To, *shape) -> (B, To, per_frame)
        if key not in self.encoder_of:
            return x.flatten(2)
        b, frames = x.shape[:2]
        return self.images[self.encoder_of[key]](x.flatten(0, 1)).view(b, frames, -1)
