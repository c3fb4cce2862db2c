"""Which torch device a config's ``device`` string means, and how reports name it."""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def resolve_device(device: str, field: str = "device") -> torch.device:
    """``auto``: the GPU when torch finds one, else the CPU; a CUDA device this torch cannot use is refused."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{field}: expected 'auto', 'cpu' or 'cuda[:N]', got {device!r} ({err})") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{field}: {device!r} asked, but this torch finds no CUDA GPU "
                             f"(torch {torch.__version__}, cuda available: False); use cpu or auto")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"{field}: {device!r} asked, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return resolved


def describe_device(device: str | torch.device) -> str:
    """The device as reports name it: ``cpu``, or ``cuda (NVIDIA H100 ...)`` with the card's name."""
    device = resolve_device(str(device))
    return f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def cpu_model() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows: training results move with it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
