"""Min-max normalisation whose statistics live in the model's state_dict."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["MinMaxNormalizer"]

# Buffer names: only min/max/shape are persistent; scale/offset are derived on every (re)load so a
# checkpoint holds the statistics exactly once.
_PERSISTENT = ("min", "max", "shape")
_DERIVED = ("scale", "offset", "inv_scale", "inv_offset")


def _check_key(key: Any) -> str:
    # Keys become buffer names "<stat>_<key>": torch rejects '.' and empty names.
    if not isinstance(key, str) or not key or "." in key:
        raise ValueError(f"normalizer key: expected a non-empty string without '.', got {key!r}")
    return key


class MinMaxNormalizer(nn.Module):
    """Per-key, per-dimension affine map of data to [-1, 1].

    Its statistics are buffers (``min_<key>``, ``max_<key>``, ``shape_<key>``), so they are saved in the
    checkpoint's state_dict (safetensors) and no pickle is ever needed. The per-tick cost is one
    multiply-add: scale/offset are precomputed (non-persistent buffers that follow ``.to(device)``).

    A dimension whose training range is below ``eps`` is stored as constant (max = min) and is
    shifted, not scaled: it maps to 0 and unnormalises back to its constant, exactly invertible (DP's
    choice). An empty ``MinMaxNormalizer()`` inside a policy can ``load_state_dict`` the statistics
    directly: it creates the buffers the state_dict names.
    """

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[str] = []
        self._shapes: dict[str, tuple[int, ...]] = {}  # host-side copy of shape_<key>: no device sync per call

    # ------------------------------------------------------------------ construction
    @classmethod
    def fit(
        cls,
        data: dict[str, np.ndarray],
        fixed_ranges: dict[str, tuple[float, float]] | None = None,
        *,
        eps: float = 1e-4,
    ) -> MinMaxNormalizer:
        """Statistics over axis 0 of each data[key] (N, *feature_shape).

        fixed_ranges, e.g. {"img": (0, 255)}, gives one scalar range for a key instead (images: the data
        is then used only for its feature shape, so a small slice is enough).
        """
        if not isinstance(data, Mapping) or not data:
            raise ValueError(f"data: expected a non-empty dict of key -> (N, *feature_shape) array, got {type(data).__name__}")
        fixed_ranges = {} if fixed_ranges is None else fixed_ranges
        if not isinstance(fixed_ranges, Mapping):
            raise ValueError(f"fixed_ranges: expected a dict of key -> (low, high), got {type(fixed_ranges).__name__}")
        unknown = sorted(set(fixed_ranges) - set(data))
        if unknown:
            raise ValueError(f"fixed_ranges: expected keys among data's keys {sorted(data)}, got unknown {unknown}")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(f"eps: expected a float >= 0, got {eps!r}")

        norm = cls()
        for key, value in data.items():
            _check_key(key)
            arr = np.asarray(value)
            if arr.ndim < 1 or arr.shape[0] < 1 or arr.dtype == object:
                raise ValueError(
                    f"data[{key!r}]: expected a numeric (N, *feature_shape) array with N >= 1, "
                    f"got shape {arr.shape} dtype {arr.dtype}"
                )
            feature_shape = arr.shape[1:]
            if key in fixed_ranges:
                rng = fixed_ranges[key]
                ok = isinstance(rng, (tuple, list)) and len(rng) == 2
                ok = ok and all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in rng)
                if not ok or not rng[1] > rng[0]:
                    raise ValueError(f"fixed_ranges[{key!r}]: expected finite (low, high) with high > low, got {rng!r}")
                lo = np.array(float(rng[0]))  # () scalar range, broadcast over the features
                hi = np.array(float(rng[1]))
            else:
                lo = arr.min(axis=0).astype(np.float64)  # (*feature_shape,)
                hi = arr.max(axis=0).astype(np.float64)
                if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
                    raise ValueError(f"data[{key!r}]: expected finite values, got NaN or inf")
                constant = (hi - lo) < eps
                hi = np.where(constant, lo, hi)
            norm._set_stats(
                key,
                torch.as_tensor(lo, dtype=torch.float32),
                torch.as_tensor(hi, dtype=torch.float32),
                torch.tensor(feature_shape, dtype=torch.int64),
            )
        return norm

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor], *, prefix: str = "") -> MinMaxNormalizer:
        """Rebuild from the buffers alone; `prefix` selects them inside a larger state_dict (e.g. "normalizer.")."""
        norm = cls()
        try:
            norm.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}, strict=False)
        except RuntimeError as e:
            raise ValueError(f"state: expected consistent normalizer buffers, got errors: {e}") from e
        if not norm.keys:
            raise ValueError(f"state: expected buffers named '{prefix}min_<key>', '{prefix}max_<key>', '{prefix}shape_<key>', got none")
        return norm

    def _set_stats(self, key: str, lo: torch.Tensor, hi: torch.Tensor, shape: torch.Tensor) -> None:
        for stat, tensor in zip(_PERSISTENT, (lo, hi, shape)):
            self.register_buffer(f"{stat}_{key}", tensor)
        for stat in _DERIVED:
            self.register_buffer(f"{stat}_{key}", torch.empty(0), persistent=False)
        if key not in self._keys:
            self._keys.append(key)
        self._derive(key)

    def _derive(self, key: str) -> None:
        """scale/offset from min/max, computed in float64 so min -> -1 and max -> +1 to float32 precision."""
        lo = getattr(self, f"min_{key}")
        hi = getattr(self, f"max_{key}")
        self._shapes[key] = tuple(int(d) for d in getattr(self, f"shape_{key}").tolist())
        lo64, hi64 = lo.double(), hi.double()
        span = hi64 - lo64
        constant = span <= 0
        safe = torch.where(constant, torch.ones_like(span), span)
        scale = torch.where(constant, torch.ones_like(span), 2.0 / safe)  # constant dims: shift only
        offset = torch.where(constant, -lo64, -1.0 - lo64 * scale)
        inv_scale = torch.where(constant, torch.ones_like(span), safe / 2.0)
        inv_offset = torch.where(constant, lo64, (hi64 + lo64) / 2.0)
        for name, value in zip(_DERIVED, (scale, offset, inv_scale, inv_offset)):
            setattr(self, f"{name}_{key}", value.to(lo.dtype))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # Create the buffers the state_dict names, so an empty normalizer (e.g. inside a freshly built
        # policy) can load statistics it has never seen; then derive scale/offset from them.
        found: dict[str, dict[str, torch.Tensor]] = {}
        for name, tensor in state_dict.items():
            if not name.startswith(prefix):
                continue
            stat, _, key = name[len(prefix) :].partition("_")
            if stat in _PERSISTENT and key and "." not in key:
                found.setdefault(key, {})[stat] = tensor
        for key, stats in found.items():
            if set(stats) != set(_PERSISTENT):
                error_msgs.append(f"normalizer key {key!r}: expected buffers {list(_PERSISTENT)}, got {sorted(stats)}")
                continue
            lo, hi, shape = stats["min"], stats["max"], stats["shape"]
            if lo.shape != hi.shape or shape.ndim != 1 or lo.shape not in (torch.Size([]), torch.Size(shape.tolist())):
                error_msgs.append(
                    f"normalizer key {key!r}: expected min/max of shape () or {tuple(shape.tolist())}, "
                    f"got {tuple(lo.shape)} and {tuple(hi.shape)}"
                )
                continue
            self._set_stats(key, torch.empty_like(lo), torch.empty_like(hi), torch.empty_like(shape))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        for key in self._keys:
            self._derive(key)

    # ------------------------------------------------------------------ use
    @property
    def keys(self) -> list[str]:
        return list(self._keys)

    def feature_shape(self, key: str) -> tuple[int, ...]:
        """Trailing shape that inputs for `key` must have."""
        self._check_key_known(key)
        return self._shapes[key]

    def _check_key_known(self, key: str) -> None:
        if key not in self._keys:
            raise KeyError(f"normalizer key: expected one of {self._keys}, got {key!r}")

    def _check_input(self, key: str, x: torch.Tensor) -> None:
        self._check_key_known(key)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x for {key!r}: expected a torch.Tensor, got {type(x).__name__}")
        expected = self.feature_shape(key)
        k = len(expected)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != expected:
            raise ValueError(f"x for {key!r}: expected trailing shape {expected}, got shape {tuple(x.shape)}")

    def normalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """x (..., *feature_shape) -> float tensor of the same shape, training data in [-1, 1]."""
        self._check_input(key, x)
        return x * getattr(self, f"scale_{key}") + getattr(self, f"offset_{key}")

    def unnormalize(self, key: str, x: torch.Tensor) -> torch.Tensor:
        """Inverse of normalize: x (..., *feature_shape) in [-1, 1] -> data units."""
        self._check_input(key, x)
        return x * getattr(self, f"inv_scale_{key}") + getattr(self, f"inv_offset_{key}")

    def extra_repr(self) -> str:
        return ", ".join(f"{k}: {self.feature_shape(k)}" for k in self._keys)
