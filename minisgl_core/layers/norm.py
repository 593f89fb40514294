"""RMS normalisation, computed in float32 like the reference implementations."""

from __future__ import annotations

import torch
from torch import nn

from minisgl_core.kernels import ops, use_triton


class RMSNorm(nn.Module):
    """``x / rms(x) * weight`` over the last dimension.

    ``forward(x, residual)`` first adds ``residual`` to ``x`` and returns ``(normed, new_residual)``: the
    fused form decoder layers use between blocks.
    """

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size), requires_grad=False)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(dtype)

    def forward(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 2 and use_triton(x):
            if residual is not None:
                residual = residual.clone() if residual is x else residual
            out, new_residual = ops().rmsnorm(x, self.weight, self.eps, residual)
            return out if residual is None else (out, new_residual)
        if residual is None:
            return self._norm(x)
        x = x + residual
        return self._norm(x), x
