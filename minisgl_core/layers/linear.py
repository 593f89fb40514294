"""Linear layers that know how to shard themselves for tensor parallelism.

Each parameter carries a ``weight_loader(param, loaded, shard_id=None)`` that copies this rank's part of a
full checkpoint tensor into it, so a model's ``load_weights`` never needs to know about TP. With TP size 1
every layer is a plain ``y = x @ W.T + b``.

* :class:`ColumnParallelLinear` splits output features across ranks (no communication).
* :class:`RowParallelLinear` splits input features and all-reduces the output.
* :class:`MergedColumnParallelLinear` stacks several column-parallel projections (gate/up).
* :class:`QKVParallelLinear` stacks q, k and v with grouped-query attention; when there are fewer kv heads
  than ranks, kv heads are replicated so every rank holds the kv head its q heads need.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from minisgl_core.checkpoint import default_weight_loader
from minisgl_core.parallel import all_reduce, get_tp


def _divide(numerator: int, denominator: int, what: str) -> int:
    if numerator % denominator:
        raise ValueError(f"{what} ({numerator}) is not divisible by the tensor-parallel size ({denominator})")
    return numerator // denominator


def _param(shape: tuple[int, ...], loader: object) -> nn.Parameter:
    p = nn.Parameter(torch.empty(shape), requires_grad=False)
    p.weight_loader = loader  # type: ignore[attr-defined]
    return p


class ColumnParallelLinear(nn.Module):
    """``y = x @ W.T + b`` with W's rows (output features) split across ranks; output stays sharded."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        tp = get_tp()
        self.in_features = in_features
        self.out_features = _divide(out_features, tp.size, "output features")
        self.weight = _param((self.out_features, in_features), self._load)
        self.bias = _param((self.out_features,), self._load) if bias else None

    def _load(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: object = None) -> None:
        rank = get_tp().rank
        n = param.shape[0]
        param.data.copy_(loaded.narrow(0, rank * n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel projections of the same input in one matmul (e.g. gate and up)."""

    def __init__(self, in_features: int, out_features: Sequence[int], bias: bool = False) -> None:
        tp = get_tp()
        self.shard_sizes = [_divide(n, tp.size, "output features") for n in out_features]
        super().__init__(in_features, sum(out_features), bias)

    def _load(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: object = None) -> None:
        if not isinstance(shard_id, int):
            raise ValueError("MergedColumnParallelLinear needs an integer shard_id")
        size = self.shard_sizes[shard_id]
        offset = sum(self.shard_sizes[:shard_id])
        rank = get_tp().rank
        param.data.narrow(0, offset, size).copy_(loaded.narrow(0, rank * size, size))


class QKVParallelLinear(ColumnParallelLinear):
    """The q, k and v projections in one matmul; each rank holds its q heads and the kv heads they use."""

    def __init__(self, hidden_size: int, head_dim: int, num_heads: int, num_kv_heads: int, bias: bool = False) -> None:
        tp = get_tp()
        self.head_dim = head_dim
        self.num_heads = _divide(num_heads, tp.size, "attention heads")
        if num_kv_heads >= tp.size:
            self.num_kv_heads = _divide(num_kv_heads, tp.size, "kv heads")
            self.kv_replicas = 1
        else:
            self.num_kv_heads = 1
            self.kv_replicas = _divide(tp.size, num_kv_heads, "tensor-parallel size over kv heads")
        q_size = self.num_heads * head_dim
        kv_size = self.num_kv_heads * head_dim
        self.sizes = {"q": q_size, "k": kv_size, "v": kv_size}
        nn.Module.__init__(self)
        self.in_features = hidden_size
        self.out_features = q_size + 2 * kv_size
        self.weight = _param((self.out_features, hidden_size), self._load)
        self.bias = _param((self.out_features,), self._load) if bias else None

    def _load(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: object = None) -> None:
        if shard_id not in self.sizes:
            raise ValueError("QKVParallelLinear needs shard_id 'q', 'k' or 'v'")
        size = self.sizes[shard_id]
        offset = {"q": 0, "k": self.sizes["q"], "v": self.sizes["q"] + self.sizes["k"]}[shard_id]
        rank = get_tp().rank
        index = rank if shard_id == "q" else rank // self.kv_replicas
        param.data.narrow(0, offset, size).copy_(loaded.narrow(0, index * size, size))

    def split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split the fused output into q, k and v."""
        return qkv.split([self.sizes["q"], self.sizes["k"], self.sizes["v"]], dim=-1)


class RowParallelLinear(nn.Module):
    """``y = x @ W.T + b`` with W's columns (input features) split; outputs are summed over ranks."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        tp = get_tp()
        self.in_features = _divide(in_features, tp.size, "input features")
        self.out_features = out_features
        self.weight = _param((out_features, self.in_features), self._load_weight)
        self.bias = _param((out_features,), default_weight_loader) if bias else None

    def _load_weight(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: object = None) -> None:
        n = param.shape[1]
        param.data.copy_(loaded.narrow(1, get_tp().rank * n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight)
        y = all_reduce(y)
        if self.bias is not None:
            y = y + self.bias
        return y
