"""Matrix products for few rows (decode batches): ``x @ W.T`` with ``x`` ``[M, K]``, M small.

For a decode batch the weights are read once and the arithmetic is tiny, so the product is bound by how fast
the weights stream in. Each program owns ``BLOCK_N`` output features and walks all of K, so no partial sums
cross programs and one kernel does the whole product; ``silu_mul=True`` also fuses SwiGLU's
``silu(gate) * up`` for a gate/up weight (``[gate; up]`` stacked on the output features), saving the
activation kernel and the round trip of the wide intermediate tensor.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait


class GemmConfig(NamedTuple):
    block_n: int
    block_k: int
    num_warps: int
    num_stages: int


MAX_ROWS = 64
"""Largest M served here; larger products go to cuBLAS."""


@triton.jit
def _skinny_gemm_kernel(
    x_ptr, w_ptr, out_ptr, M, stride_x, stride_w, stride_out, up_offset,
    K: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, SILU_MUL: tl.constexpr,
    PDL: tl.constexpr,
):  # fmt: skip
    if PDL:  # programmatic dependent launch: let the next kernel launch now, wait for the previous one's writes
        gdc_launch_dependents()
        gdc_wait()
    cols = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rows = tl.arange(0, BLOCK_M)
    ks = tl.arange(0, BLOCK_K)
    row_mask = rows[:, None] < M
    x_ptrs = x_ptr + rows[:, None] * stride_x + ks[None, :]
    w_ptrs = w_ptr + cols[:, None] * stride_w + ks[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for i in range(K // BLOCK_K):  # K is a constant of the layer (one compiled variant per shape)
        k = i * BLOCK_K
        x = tl.load(x_ptrs + k, mask=row_mask, other=0.0)
        acc = tl.dot(x, tl.trans(tl.load(w_ptrs + k)), acc)
        if SILU_MUL:
            acc_up = tl.dot(x, tl.trans(tl.load(w_ptrs + up_offset * stride_w + k)), acc_up)
    if SILU_MUL:
        gate = acc.to(out_ptr.dtype.element_ty).to(tl.float32)  # rounded like the unfused product
        silu = (gate / (1.0 + tl.exp(-gate))).to(out_ptr.dtype.element_ty).to(tl.float32)
        acc = silu * acc_up.to(out_ptr.dtype.element_ty).to(tl.float32)
    tl.store(out_ptr + rows[:, None] * stride_out + cols[None, :], acc.to(out_ptr.dtype.element_ty), mask=row_mask)


def config_for(m: int, n: int, silu_mul: bool) -> GemmConfig:
    """Tile configuration for ``m`` rows and ``n`` outputs (after any SiLU fusion), from
    ``benchmarks/kernel_micro.py`` on the H200 (Qwen3-0.6B shapes, m = 8 and 64)."""
    block_n = 16 if n <= 2048 else 32
    if silu_mul and m > 32:  # two weight tiles per stage: fewer, shorter stages fit in shared memory
        return GemmConfig(block_n, 128, 4, 3)
    return GemmConfig(block_n, 256, 4, 4)


def fits(x: torch.Tensor, weight: torch.Tensor, silu_mul: bool = False, config: GemmConfig | None = None) -> bool:
    """True when :func:`skinny_gemm` serves this product (few rows, tile-aligned shapes, contiguous K)."""
    n, k = weight.shape
    if silu_mul:
        n //= 2
    config = config or config_for(x.shape[0], n, silu_mul)
    return (
        x.dim() == 2
        and 0 < x.shape[0] <= MAX_ROWS
        and x.shape[1] == k
        and x.stride(1) == 1
        and weight.stride(1) == 1
        and x.dtype == weight.dtype
        and n % config.block_n == 0
        and k % config.block_k == 0
    )


def skinny_gemm(
    x: torch.Tensor, weight: torch.Tensor, silu_mul: bool = False, config: GemmConfig | None = None, pdl: bool = False
) -> torch.Tensor:
    """``x @ weight.T`` (``[M, N]``), or with ``silu_mul`` ``silu(x @ gate.T) * (x @ up.T)`` (``[M, N/2]``)
    for ``weight = [gate; up]``. The caller checks :func:`fits` first (with the same ``config``)."""
    m, k = x.shape
    n = weight.shape[0] // 2 if silu_mul else weight.shape[0]
    config = config or config_for(m, n, silu_mul)
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    block_m = max(16, triton.next_power_of_2(m))
    _skinny_gemm_kernel[(n // config.block_n,)](
        x, weight, out, m, x.stride(0), weight.stride(0), out.stride(0), n,
        K=k, BLOCK_M=block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, SILU_MUL=silu_mul, PDL=pdl,
        num_warps=config.num_warps, num_stages=config.num_stages, launch_pdl=pdl,
    )  # fmt: skip
    return out
