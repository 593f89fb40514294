"""Gated activations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minisgl_core.kernels import ops, use_triton


class SiluAndMul(nn.Module):
    """``silu(gate) * up`` for a tensor holding ``[gate, up]`` along the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2 and use_triton(x):
            return ops().silu_and_mul(x)
        gate, up = x.chunk(2, dim=-1)
        return F.silu(gate) * up
