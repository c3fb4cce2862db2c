"""Data-parallel training under ``torchrun``: one process per device, one process group, one model.

``torchrun --nproc_per_node=N -m shortcut_policy.train ...`` starts N copies of the training command;
torchrun tells each its place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``). Each
rank draws its own batches (from its share of the windows) and its own noise, computes the loss of
its batch inside ``DistributedDataParallel``'s forward (:class:`LossModule`: the observation encoder
and every denoiser call, so DDP sees every parameter), and DDP averages the gradients, so N ranks of
batch B take the step one process of batch N * B would. Rank 0 owns everything on disk: the
demonstrations (the others wait for them), the run folder's lock, logs, checkpoints and the final
evaluation. Without torchrun (no ``WORLD_SIZE``, or 1) nothing here changes a run.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")
# how long a rank waits in a collective: the others wait for rank 0's demonstrations and periodic
# evaluations, which can take far longer than torch's default (10 min for NCCL)
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=3)


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank among this machine's processes: which GPU it drives

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def ranks_from_env() -> Ranks:
    """This process's place, as torchrun sets it (a plain run: rank 0 of 1)."""
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        raw = os.environ.get(name, str(default))
        try:
            values[name] = int(raw)
        except ValueError:
            raise ValueError(f"{name}: expected an integer (torchrun sets it), got {raw!r}") from None
    ranks = Ranks(values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"])
    if ranks.world_size < 1 or not 0 <= ranks.rank < ranks.world_size or ranks.local_rank < 0:
        raise ValueError(f"RANK/WORLD_SIZE/LOCAL_RANK: expected 0 <= RANK < WORLD_SIZE, got {values}")
    return ranks


def init(device: torch.device) -> tuple[Ranks, torch.device]:
    """Join torchrun's process group (NCCL on GPUs, gloo on CPUs) once; returns this rank and its device
    (``cuda:<local_rank>`` when training on GPUs)."""
    ranks = ranks_from_env()
    if not ranks.active:
        return ranks, device
    if device.type == "cuda":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return ranks, device


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def main_first(make: Callable[[], T], ranks: Ranks) -> T:
    """``make()`` on rank 0 first (it may write, e.g. the demonstrations), then on the others, which find
    what it wrote."""
    if ranks.main:
        value = make()
    barrier()
    if not ranks.main:
        value = make()
    return value


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (e.g. the run folder, whose default name has the time in it)."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shard(n: int, ranks: Ranks) -> np.ndarray:
    """The indices of ``n`` training windows this rank draws its batches from: every world_size-th one."""
    if n < ranks.world_size:
        raise ValueError(f"torchrun: {ranks.world_size} ranks need at least as many training windows, the store has {n}")
    return np.arange(ranks.rank, n, ranks.world_size)


def check_same_step(step: int, ranks: Ranks) -> None:
    """Refuse ranks that resumed from different train states (no shared disk, a stale copy): their step
    counts would differ and the job would hang in an all-reduce."""
    if ranks.active and broadcast(step) != step:
        raise RuntimeError(f"train.resume: rank {ranks.rank} resumed at step {step}, rank 0 at another; every rank "
                           "must read the same train state (a run folder on a disk they share)")


class LossModule(nn.Module):
    """An objective's loss on a network as one module call, so that under DDP the whole of it (encoding
    the observations, the targets' no-grad passes, the trained pass) runs inside DDP's forward."""

    def __init__(self, objective: Any, network: nn.Module) -> None:
        super().__init__()
        self.objective = objective
        self.network = network

    def forward(self, x1: torch.Tensor, cond_input: Any, target_net: nn.Module | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        return self.objective.loss(self.network, x1, cond_input, target_net=target_net, generator=generator)


def wrap(objective: Any, network: nn.Module, ranks: Ranks, device: torch.device) -> nn.Module:
    """The loss as a module: inside ``DistributedDataParallel`` when there are several ranks (its
    parameters then start as rank 0's, and their gradients are averaged over the ranks)."""
    module = LossModule(objective, network)
    if not ranks.active:
        return module
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def close() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
