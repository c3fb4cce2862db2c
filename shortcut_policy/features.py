"""Observation features: each key a policy observes, with its per-frame shape and its kind.

Environments declare their keys this way (``EnvSpec.obs``), the policy's contract stores them in the
checkpoint, and the observation encoder reads the kind to send a key through an image encoder or not.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Iterable, Literal, Mapping, Sequence

ObsType = Literal["low_dim", "rgb"]
OBS_TYPES = ("low_dim", "rgb")


@dataclass(frozen=True)
class ObsSpec:
    """One observation key, as Diffusion Policy's ``shape_meta`` describes it."""

    shape: tuple[int, ...]  # per frame; rgb: (H, W, 3) uint8
    type: ObsType = "low_dim"

    def __post_init__(self) -> None:
        if self.type not in OBS_TYPES:
            raise ValueError(f"ObsSpec.type: expected {' or '.join(map(repr, OBS_TYPES))}, got {self.type!r}")
        try:  # ints or numpy ints; not floats, bools or a string
            shape = () if isinstance(self.shape, str) else tuple(n if isinstance(n, bool) else operator.index(n) for n in self.shape)
        except TypeError:
            shape = ()
        if not shape or any(isinstance(n, bool) or n < 1 for n in shape):
            raise ValueError(f"ObsSpec.shape: expected a non-empty tuple of integer sizes >= 1, got {self.shape!r}")
        object.__setattr__(self, "shape", shape)


def stored_layout_type(shape: Sequence[int]) -> ObsType:
    """The kind of a key that no environment declares, from the layout stores use: 3-D arrays are
    (H, W, 3) camera images (another channel count is refused by the image encoder), 1-D and 2-D arrays
    low-dim (a 2-D one, like the (9, 2) keypoints of Diffusion Policy's Push-T store, is flattened per
    frame). Used for a user store's extra keys and for checkpoints written before the contract existed;
    a declared kind always wins."""
    return "rgb" if len(shape) == 3 else "low_dim"


def obs_features(shapes: Mapping[str, Sequence[int]], rgb: Iterable[str] = ()) -> dict[str, ObsSpec]:
    """Observation features from shapes: the keys in ``rgb`` are cameras, the others low-dim."""
    if isinstance(rgb, str):
        raise TypeError(f"rgb: expected a list of camera keys, got the string {rgb!r} (write [{rgb!r}])")
    rgb = set(rgb)
    unknown = rgb - set(shapes)
    if unknown:
        raise ValueError(f"rgb: {sorted(unknown)} are not among the observation keys {list(shapes)}")
    return {k: ObsSpec(tuple(shape), "rgb" if k in rgb else "low_dim") for k, shape in shapes.items()}
