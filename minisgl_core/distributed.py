"""Tensor-parallel facts of this process and the collectives layers call (no-ops when TP is 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TPInfo:
    """This process's place in its tensor-parallel group."""

    rank: int = 0
    size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


_tp = TPInfo()


def get_tp() -> TPInfo:
    """The tensor-parallel group of this process (rank 0 of 1 unless an engine set it up)."""
    return _tp


def set_tp(info: TPInfo) -> None:
    """Record this process's rank; called once by the engine process before building the model."""
    global _tp
    _tp = info


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
