"""Tensor parallelism: this process's rank, the collectives layers call (no-ops when TP is 1), and the
step-plan broadcast from rank 0 to the other ranks.

Ranks form one ``torch.distributed`` group (NCCL on CUDA, gloo on CPU) created through its own TCP
rendezvous, so a group may span nodes. Plans travel over a gloo group (host objects); sampled tokens over
the device group, so every rank feeds the same tokens into the next step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from minisgl_core.contracts.model import TPInfo

_tp = TPInfo()
_cpu_group: Any = None


def get_tp() -> TPInfo:
    """The tensor-parallel group of this process (rank 0 of 1 unless an engine set it up)."""
    return _tp


def set_tp(info: TPInfo) -> None:
    """Record this process's rank; called once by the engine process before building the model."""
    global _tp
    _tp = info


def resolve_device(requested: str | None, tp: TPInfo) -> torch.device:
    """``None`` -> ``cuda:<rank>`` when CUDA is available, else ``cpu``; ``cuda`` -> ``cuda:<rank>``."""
    if requested is None:
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", tp.rank % max(torch.cuda.device_count(), 1))
    return device


def all_reduce(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over the tensor-parallel group in place and return it."""
    if _tp.size > 1:
        torch.distributed.all_reduce(x)
    return x


def all_gather_last_dim(x: torch.Tensor) -> torch.Tensor:
    """Concatenate each rank's ``x`` along the last dimension (rank order)."""
    if _tp.size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(_tp.size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=-1)


def init_tp_group(rank: int, size: int, init_addr: str, device_type: str) -> TPInfo:
    """Join the tensor-parallel group as ``rank`` of ``size`` (rendezvous at ``init_addr``, HOST:PORT)."""
    global _cpu_group
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://{init_addr}", rank=rank, world_size=size)
    _cpu_group = dist.new_group(backend="gloo") if backend == "nccl" else dist.group.WORLD
    info = TPInfo(rank, size)
    set_tp(info)
    return info


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (other ranks pass anything, e.g. None)."""
    box = [obj]
    dist.broadcast_object_list(box, src=0, group=_cpu_group)
    return box[0]


def broadcast_tensor(x: torch.Tensor) -> torch.Tensor:
    """Overwrite ``x`` with rank 0's values on every rank (no-op when TP is 1)."""
    if _tp.size > 1:
        dist.broadcast(x, src=0)
    return x


def destroy_tp_group() -> None:
    """Leave the group (idempotent); this process is rank 0 of 1 again."""
    global _cpu_group
    if dist.is_initialized():
        dist.destroy_process_group()
    _cpu_group = None
    set_tp(TPInfo())
