"""Checkpoints as safetensors files with JSON metadata: no pickle is ever written or loaded.

Two self-contained files per run, each written atomically (temp file in the same folder, then
``os.replace``), so a killed run leaves either the previous file or the new one, never half of one:

* ``policy.safetensors``: EMA network weights and normalizer statistics, plus the config. This is
  all ``load_policy`` needs.
* ``train_state.safetensors``: online and EMA weights, optimizer moments and RNG states, plus the
  step, so that ``train.resume=true`` continues a killed run where it stopped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .utils.io import atomic_write

POLICY_FILE = "policy.safetensors"
MODEL_FILE = "model.safetensors"  # the image path's trained model
TRAIN_STATE_FILE = "train_state.safetensors"
EVAL_DIR = "eval"  # a run's final evaluation: reports, plots, videos
METRICS_FILE = "metrics.jsonl"  # one JSON record per logged training step
# 3: a policy file carries its contract (policy.py); 2: the step size d is a real number (1: an integer level, a table)
FORMAT = "shortcut-policy/3"
READABLE_FORMATS = (FORMAT, "shortcut-policy/2")  # a format-2 policy file is read through the contract's migration
OLD_FORMATS = {"shortcut-policy/1": "its network takes the step size as an integer level (before the real-valued step input): retrain it"}


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write tensors and JSON-able ``meta`` to ``path`` atomically."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {"format": FORMAT, "meta": json.dumps(meta)}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_tensors(path: str | os.PathLike, device: str = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by ``save_tensors``: (tensors, meta)."""
    return _read(path, device, with_tensors=True)


def load_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Only the JSON metadata of a file written by ``save_tensors`` (no tensor is read)."""
    return _read(path, "cpu", with_tensors=False)[1]


def _read(path: str | os.PathLike, device: str, with_tensors: bool) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no file at {path}")
    try:
        with safe_open(str(path), framework="pt", device=device) as f:
            metadata = f.metadata() or {}
            if metadata.get("format") not in READABLE_FORMATS:
                why = OLD_FORMATS.get(metadata.get("format"))
                raise ValueError(f"checkpoint {path}: expected format {FORMAT!r}, got {metadata.get('format')!r}" + (f"; {why}" if why else ""))
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
    except ValueError:
        raise
    except Exception as err:  # safetensors' own error types: not a safetensors file, or a truncated one
        raise ValueError(f"checkpoint {path}: expected a safetensors file, could not read it ({type(err).__name__}: {err})") from None
    try:
        meta = json.loads(metadata["meta"])
    except (KeyError, json.JSONDecodeError) as err:  # an edited file: say which, and where
        raise ValueError(f"checkpoint {path}: its JSON metadata is missing or not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"checkpoint {path}: expected its JSON metadata to be an object, got {type(meta).__name__}")
    return tensors, meta


def mismatch_detail(err: BaseException) -> str:
    """An error met while fitting a file's contents to a model, on one line: a missing key, or the first
    two lines (load_state_dict's header, then its first size mismatch)."""
    if isinstance(err, KeyError):
        return f"missing {err}"
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()] or [type(err).__name__]
    return " ".join(lines[:2])


def check_finite(path: str | os.PathLike, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a checkpoint holding NaN or inf (weights, normalizer statistics): it would act with them."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise ValueError(f"checkpoint {path}: non-finite values (NaN or inf) in {shown}")


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer's state_dict into tensors and JSON (param groups), for safetensors."""
    state = optimizer.state_dict()
    tensors = {}
    for param_id, param_state in state["state"].items():
        for name, value in param_state.items():
            if not torch.is_tensor(value):
                raise TypeError(f"optimizer state {name!r} is not a tensor; cannot store it without pickle")
            tensors[f"{param_id}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"]}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def resolve_checkpoint(path: str | os.PathLike, filename: str = POLICY_FILE) -> Path:
    """Accept a checkpoint file or a run directory holding one."""
    path = Path(path).expanduser()
    if path.is_dir():
        candidate = path / filename
        if not candidate.is_file():
            raise FileNotFoundError(f"checkpoint: {path} is a folder without {filename}")
        return candidate
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: expected a {filename} file or a run folder, got missing path {path}")
    return path
