"""Optional fused kernels (Triton) for the GPU hot path.

Layers call :func:`use_triton` with their input: it is true for CUDA tensors when Triton imports and
``MINISGL_DISABLE_TRITON`` is not set (and for CPU tensors under ``TRITON_INTERPRET=1``, for tests).
Otherwise layers use their plain PyTorch code, which is also the reference the kernels are tested against.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

import torch

__all__ = ["ops", "rope_kernel_fits", "use_triton"]


@functools.cache
def _ops() -> ModuleType | None:
    if os.environ.get("MINISGL_DISABLE_TRITON"):
        return None
    try:
        from minisgl_core.kernels import triton_ops
    except Exception:  # noqa: BLE001 - no triton, or a broken install: fall back to PyTorch
        return None
    return triton_ops


def use_triton(x: torch.Tensor) -> bool:
    if x.is_cuda or os.environ.get("TRITON_INTERPRET") == "1":
        return _ops() is not None
    return False


def rope_kernel_fits(head_dim: int) -> bool:
    """The RoPE kernels handle a head as two power-of-two halves (head_dim 32, 64, 128, 256, ...)."""
    half = head_dim // 2
    return head_dim % 2 == 0 and half > 0 and half & (half - 1) == 0


def ops() -> ModuleType:
    """The Triton kernels module (call only after :func:`use_triton` returned True)."""
    module = _ops()
    assert module is not None
    return module
