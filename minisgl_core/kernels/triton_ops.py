"""Fused Triton kernels for the decode hot path: each replaces a chain of small PyTorch ops with one launch.

All take CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``, which is how they are unit-tested
without a GPU) and compute in float32, rounding once to the activation dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rmsnorm_kernel(x_ptr, res_ptr, w_ptr, out_ptr, stride_x, stride_res, stride_out, n, eps,
                    HAS_RESIDUAL: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < n
    x = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    if HAS_RESIDUAL:
        x = (x.to(tl.float32) + tl.load(res_ptr + row * stride_res + cols, mask=mask, other=0.0).to(tl.float32)).to(
            x.dtype
        )
        tl.store(res_ptr + row * stride_res + cols, x, mask=mask)
    x32 = x.to(tl.float32)
    rstd = tl.rsqrt(tl.sum(x32 * x32, axis=0) / n + eps)
    y = (x32 * rstd).to(x.dtype).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(out_ptr + row * stride_out + cols, (w * y).to(x.dtype), mask=mask)


def rmsnorm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``weight * x / rms(x)`` over the last dim of 2-D ``x``. With ``residual``, first ``x + residual`` is
    written back into ``residual`` (in place) and normalised: returns ``(normed, residual)``."""
    n = x.shape[-1]
    out = torch.empty_like(x)
    res = residual if residual is not None else x
    _rmsnorm_kernel[(x.shape[0],)](
        x, res, weight, out, x.stride(0), res.stride(0), out.stride(0), n, eps,
        HAS_RESIDUAL=residual is not None, BLOCK=triton.next_power_of_2(n),
    )  # fmt: skip
    return out, residual


@triton.jit
def _norm_rope_kernel(x_ptr, w_ptr, cos_ptr, sin_ptr, pos_ptr, out_ptr, stride_t, stride_h, stride_cache,
                      num_heads, eps, HAS_NORM: tl.constexpr, HALF: tl.constexpr):  # fmt: skip
    pid = tl.program_id(0)
    t = pid // num_heads
    h = pid % num_heads
    cols = tl.arange(0, HALF)
    base = x_ptr + t * stride_t + h * stride_h
    x1 = tl.load(base + cols)
    x2 = tl.load(base + HALF + cols)
    dtype = x1.dtype
    a = x1.to(tl.float32)
    b = x2.to(tl.float32)
    if HAS_NORM:
        rstd = tl.rsqrt((tl.sum(a * a, axis=0) + tl.sum(b * b, axis=0)) / (2 * HALF) + eps)
        a = (a * rstd).to(dtype).to(tl.float32) * tl.load(w_ptr + cols).to(tl.float32)
        b = (b * rstd).to(dtype).to(tl.float32) * tl.load(w_ptr + HALF + cols).to(tl.float32)
        a = a.to(dtype).to(tl.float32)
        b = b.to(dtype).to(tl.float32)
    pos = tl.load(pos_ptr + t)
    cos = tl.load(cos_ptr + pos * stride_cache + cols)
    sin = tl.load(sin_ptr + pos * stride_cache + cols)
    out = out_ptr + (t * num_heads + h) * 2 * HALF
    tl.store(out + cols, (a * cos - b * sin).to(dtype))
    tl.store(out + HALF + cols, (b * cos + a * sin).to(dtype))


def norm_rope(
    x: torch.Tensor,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Optional per-head RMSNorm, then rotate-half RoPE, of ``x`` ``[tokens, heads, head_dim]`` (may be a
    strided view, e.g. a slice of a fused QKV output). Returns a contiguous tensor of the same shape.
    ``cos``/``sin`` are ``[max_positions, head_dim]`` float32 caches (first half used)."""
    tokens, heads, dim = x.shape
    assert x.stride(2) == 1 and dim % 2 == 0
    out = torch.empty((tokens, heads, dim), dtype=x.dtype, device=x.device)
    if tokens == 0:
        return out
    _norm_rope_kernel[(tokens * heads,)](
        x, weight if weight is not None else x, cos, sin, positions, out, x.stride(0), x.stride(1),
        cos.stride(0), heads, eps, HAS_NORM=weight is not None, HALF=dim // 2,
    )  # fmt: skip
    return out


@triton.jit
def _silu_mul_kernel(x_ptr, out_ptr, stride_x, n, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = cols < n
    gate = tl.load(x_ptr + row * stride_x + cols, mask=mask, other=0.0)
    up = tl.load(x_ptr + row * stride_x + n + cols, mask=mask, other=0.0)
    g = gate.to(tl.float32)
    silu = (g / (1.0 + tl.exp(-g))).to(gate.dtype).to(tl.float32)
    tl.store(out_ptr + row * n + cols, (silu * up.to(tl.float32)).to(gate.dtype), mask=mask)


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` for 2-D ``x = [gate, up]`` along the last dim."""
    n = x.shape[-1] // 2
    out = torch.empty((x.shape[0], n), dtype=x.dtype, device=x.device)
    block = 1024
    _silu_mul_kernel[(x.shape[0], triton.cdiv(n, block))](x, out, x.stride(0), n, BLOCK=block)
    return out


@triton.jit
def _gumbel_argmax_kernel(logits_ptr, temp_ptr, out_ptr, stride, seed, vocab: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    temp = tl.load(temp_ptr + row)
    sampled = (temp > 0).to(tl.float32)  # 0 for greedy rows: no noise, no scaling
    inv_temp = sampled / (temp + (1.0 - sampled)) + (1.0 - sampled)
    best_val = tl.full((BLOCK,), float("-inf"), tl.float32)
    best_idx = tl.zeros((BLOCK,), tl.int32)
    for start in range(0, vocab, BLOCK):  # vocab is a compile-time constant: one build per model
        cols = start + tl.arange(0, BLOCK)
        mask = cols < vocab
        v = tl.load(logits_ptr + row * stride + cols, mask=mask, other=0.0).to(tl.float32) * inv_temp
        u = tl.rand(seed, row * vocab + cols)
        u = tl.minimum(tl.maximum(u, 1e-10), 1.0 - 1e-7)
        v = v - tl.log(-tl.log(u)) * sampled
        v = tl.where(mask, v, float("-inf"))
        better = v > best_val
        best_val = tl.where(better, v, best_val)
        best_idx = tl.where(better, cols, best_idx)
    top = tl.max(best_val, axis=0)
    idx = tl.min(tl.where(best_val == top, best_idx, vocab), axis=0)
    tl.store(out_ptr + row, idx.to(tl.int64))


def sample_gumbel(logits: torch.Tensor, temperatures: torch.Tensor, seed: int) -> torch.Tensor:
    """One pass per row: greedy where ``temperature == 0``, else a sample from ``softmax(logits / T)``
    (Gumbel-max with Philox noise keyed by ``seed``, row and token)."""
    rows, vocab = logits.shape
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    _gumbel_argmax_kernel[(rows,)](logits, temperatures, out, logits.stride(0), seed, vocab=vocab, BLOCK=2048)
    return out


@triton.jit
def _paged_indices_kernel(table_ptr, rows_ptr, indptr_ptr, out_ptr, stride_table, page_size, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    start = tl.load(indptr_ptr + b)
    n = tl.load(indptr_ptr + b + 1) - start
    row = tl.load(rows_ptr + b)
    idx = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < n
    slot = tl.load(table_ptr + row * stride_table + idx * page_size, mask=mask, other=0)
    tl.store(out_ptr + start + idx, slot // page_size, mask=mask)


def paged_kv_indices(
    page_table: torch.Tensor,
    rows: torch.Tensor,
    indptr: torch.Tensor,
    total: int,
    max_pages: int,
    page_size: int,
) -> torch.Tensor:
    """Flattened page ids of each request (``page_table[rows[b], p * page_size] // page_size`` for its
    pages ``p``), laid out by the page ``indptr`` (device int32, ``[batch + 1]``); int32 ``[total]``.
    ``max_pages`` bounds any request's page count (host int)."""
    out = torch.empty(total, dtype=torch.int32, device=page_table.device)
    block = 256
    if total:
        grid = (rows.shape[0], triton.cdiv(max_pages, block))
        _paged_indices_kernel[grid](page_table, rows, indptr, out, page_table.stride(0), page_size, BLOCK=block)
    return out
