"""Which torch device a config's ``device`` string means, and how reports name it."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def describe_device(device: str | torch.device) -> str:
    """The device as reports name it: ``cpu``, or ``cuda (NVIDIA H100 ...)`` with the card's name."""
    device = resolve_device(str(device))
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)
