"""The observation encoder: normalized observation history -> one conditioning vector per sample."""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import nn

from ..features import ObsSpec
from .vision import ImageEncoder, VisionConfig, check_image_shape

SHARED = "shared"  # the name of the one image encoder when policy.vision.share is set


def check_obs_features(obs: Mapping[str, ObsSpec], vision: VisionConfig) -> None:
    """Refuse a key the encoder cannot take: checked when a policy is built, and before a training run
    makes its demonstrations (from the env's declared keys)."""
    for key, spec in obs.items():
        if not isinstance(spec, ObsSpec):
            raise TypeError(f"obs[{key!r}]: expected an ObsSpec (shape and kind; features.obs_features(shapes, rgb=[...]) "
                            f"makes them from shapes), got {spec!r}")
        if spec.type == "rgb":
            check_image_shape(key, spec.shape, vision)
        elif len(spec.shape) not in (1, 2):
            raise ValueError(
                f"obs_keys: expected 1-D or 2-D low-dim observations or (H, W, 3) images, got {key!r} with shape {spec.shape}"
                + (" declared low_dim (a camera is declared rgb)" if len(spec.shape) == 3 else "")
            )


class ObsEncoder(nn.Module):
    """Encodes every key of every observation frame and concatenates them, as Diffusion Policy does.

    Input ``obs[key]``: (B, n_obs_steps, *shape_key). A low-dim key passes through flattened; an rgb
    key (B, To, H, W, 3) goes through its image encoder (``policy.vision``) once per frame, as one batch
    of B * To images. Output (B, n_obs_steps * per_frame), frame-major (every key of frame 0 in
    ``obs``' order, then frame 1, ...), so that any backbone can view it as one token per frame.
    With no camera key the encoder has no parameters.
    """

    def __init__(self, obs: Mapping[str, ObsSpec], n_obs_steps: int, vision: VisionConfig | None = None) -> None:
        super().__init__()
        vision = vision or VisionConfig()
        check_obs_features(obs, vision)
        self.keys = list(obs)
        cameras = [k for k, spec in obs.items() if spec.type == "rgb"]
        # camera key -> the name of its encoder; a shared one is stored once (safetensors refuses tensors
        # saved under two names)
        self.encoder_of = {k: SHARED if vision.share else k for k in cameras}
        self.images = nn.ModuleDict({name: ImageEncoder(vision) for name in dict.fromkeys(self.encoder_of.values())})
        per_frame = {k: vision.feature_dim if k in self.encoder_of else math.prod(spec.shape) for k, spec in obs.items()}
        self.out_dim = n_obs_steps * sum(per_frame.values())

    def forward(self, obs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self._frames(key, obs[key]) for key in self.keys], dim=-1).flatten(1)

    def _frames(self, key: str, x: torch.Tensor) -> torch.Tensor:  # (B, To, *shape) -> (B, To, per_frame)
        if key not in self.encoder_of:
            return x.flatten(2)
        b, frames = x.shape[:2]
        return self.images[self.encoder_of[key]](x.flatten(0, 1)).view(b, frames, -1)
