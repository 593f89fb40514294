"""Fused Triton kernels for the decode hot path: each replaces a chain of small PyTorch ops with one launch.

All take CUDA tensors (or CPU tensors under ``TRITON_INTERPRET=1``, which is how they are unit-tested
without a GPU) and compute in float32, rounding once to the activation dtype.

Triton compiles a kernel again for every new combination of "specialised" arguments (integers equal to 1
or divisible by 16, pointers aligned to 16 bytes). Arguments that change from step to step - the sampling
seed, index tensors that are views into one packed host-to-device copy - are exempt, so a run never stops
to compile once it is warm.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from minisgl_core.kernels.sampling_ops import sample_gumbel  # noqa: F401 - part of ops()


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
def _norm_rope_heads(src, stride_h, num_heads, w_ptr, cos, sin, eps,
                     HAS_NORM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr):  # fmt: skip
    """(Optional per-head RMSNorm, then) rotate-half RoPE of one token's ``num_heads`` heads at ``src``
    (head ``h`` at ``src + h * stride_h``), as one ``[BLOCK_H, HALF]`` tile per half; ``cos``/``sin`` are the
    token's ``[1, HALF]`` float32 rows. Returns the two rotated halves, the heads mask and the offsets."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    cols = tl.arange(0, HALF)[None, :]
    mask = heads < num_heads
    offs = heads * stride_h + cols
    x1 = tl.load(src + offs, mask=mask, other=0.0)
    x2 = tl.load(src + HALF + offs, mask=mask, other=0.0)
    dtype = x1.dtype
    a = x1.to(tl.float32)
    b = x2.to(tl.float32)
    if HAS_NORM:
        rstd = tl.rsqrt((tl.sum(a * a, axis=1) + tl.sum(b * b, axis=1)) / (2 * HALF) + eps)[:, None]
        a = ((a * rstd).to(dtype).to(tl.float32) * tl.load(w_ptr + cols).to(tl.float32)).to(dtype).to(tl.float32)
        b = ((b * rstd).to(dtype).to(tl.float32) * tl.load(w_ptr + HALF + cols).to(tl.float32)).to(dtype).to(tl.float32)
    return (a * cos - b * sin).to(dtype), (b * cos + a * sin).to(dtype), mask, heads, cols


@triton.jit
def _store_halves(dst, heads, cols, mask, stride_h, x1, x2, HALF: tl.constexpr):
    tl.store(dst + heads * stride_h + cols, x1, mask=mask)
    tl.store(dst + HALF + heads * stride_h + cols, x2, mask=mask)


@triton.jit
def _cos_sin(cos_ptr, sin_ptr, pos_ptr, t, stride_cache, HALF: tl.constexpr):
    cols = tl.arange(0, HALF)[None, :]
    pos = tl.load(pos_ptr + t)
    return tl.load(cos_ptr + pos * stride_cache + cols), tl.load(sin_ptr + pos * stride_cache + cols)


@triton.jit
def _rope_heads_into(src, stride_h, dst, num_heads, w_ptr, cos, sin, eps,
                     HAS_NORM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr):  # fmt: skip
    """Norm + RoPE of one token's heads at ``src`` (head stride ``stride_h``) into ``dst`` (contiguous heads)."""
    x1, x2, mask, heads, cols = _norm_rope_heads(
        src, stride_h, num_heads, w_ptr, cos, sin, eps, HAS_NORM, HALF, BLOCK_H
    )
    _store_halves(dst, heads, cols, mask, 2 * HALF, x1, x2, HALF)


@triton.jit(do_not_specialize_on_alignment=["pos_ptr"])
def _norm_rope_kernel(x_ptr, w_ptr, cos_ptr, sin_ptr, pos_ptr, out_ptr, stride_t, stride_h, stride_cache,
                      num_heads, eps, HAS_NORM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr):  # fmt: skip
    """Program t: all heads of token t."""
    t = tl.program_id(0)
    cos, sin = _cos_sin(cos_ptr, sin_ptr, pos_ptr, t, stride_cache, HALF)
    _rope_heads_into(x_ptr + t * stride_t, stride_h, out_ptr + t * num_heads * 2 * HALF, num_heads, w_ptr, cos, sin,
                     eps, HAS_NORM, HALF, BLOCK_H)  # fmt: skip


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
    _norm_rope_kernel[(tokens,)](
        x, weight if weight is not None else x, cos, sin, positions, out, x.stride(0), x.stride(1),
        cos.stride(0), heads, eps, HAS_NORM=weight is not None, HALF=dim // 2, BLOCK_H=triton.next_power_of_2(heads),
    )  # fmt: skip
    return out


@triton.jit
def _rope_store_kv(k_src, v_src, k_dst, k_cache_ptr, v_cache_ptr, slot_ptr, stride_kc, stride_vc, num_heads, w_ptr,
                   cos, sin, eps, HAS_NORM: tl.constexpr, HALF: tl.constexpr, BLOCK_H: tl.constexpr):  # fmt: skip
    """Norm + RoPE of one token's key heads into ``k_dst`` and the key cache at the token's slot (loaded from
    ``slot_ptr``); its value heads copied into the value cache."""
    x1, x2, mask, heads, cols = _norm_rope_heads(
        k_src, 2 * HALF, num_heads, w_ptr, cos, sin, eps, HAS_NORM, HALF, BLOCK_H
    )
    slot = tl.load(slot_ptr)
    k_cache = k_cache_ptr + slot * stride_kc
    v_cache = v_cache_ptr + slot * stride_vc
    _store_halves(k_dst, heads, cols, mask, 2 * HALF, x1, x2, HALF)
    _store_halves(k_cache, heads, cols, mask, 2 * HALF, x1, x2, HALF)
    offs = heads * 2 * HALF + cols
    tl.store(v_cache + offs, tl.load(v_src + offs, mask=mask), mask=mask)
    tl.store(v_cache + HALF + offs, tl.load(v_src + HALF + offs, mask=mask), mask=mask)


@triton.jit(do_not_specialize_on_alignment=["pos_ptr", "slot_ptr"])
def _rope_store_kernel(q_ptr, k_ptr, v_ptr, qw_ptr, kw_ptr, cos_ptr, sin_ptr, pos_ptr, slot_ptr,
                       q_out_ptr, k_out_ptr, k_cache_ptr, v_cache_ptr,
                       stride_q, stride_k, stride_v, stride_cache_pos, stride_kc, stride_vc,
                       num_heads, num_kv_heads, eps, HAS_NORM: tl.constexpr, HALF: tl.constexpr,
                       BLOCK_Q: tl.constexpr, BLOCK_KV: tl.constexpr):  # fmt: skip
    """Program (token, part): part 0 normalises and rotates the token's query heads into q_out; part 1 its
    key heads into k_out and the key cache, and copies its value heads into the value cache."""
    t = tl.program_id(0)
    cos, sin = _cos_sin(cos_ptr, sin_ptr, pos_ptr, t, stride_cache_pos, HALF)
    # the branches only call functions: Triton needs names bound in both branches to have one shape
    if tl.program_id(1) == 0:
        _rope_heads_into(q_ptr + t * stride_q, 2 * HALF, q_out_ptr + t * num_heads * 2 * HALF, num_heads, qw_ptr,
                         cos, sin, eps, HAS_NORM, HALF, BLOCK_Q)  # fmt: skip
    else:
        _rope_store_kv(k_ptr + t * stride_k, v_ptr + t * stride_v, k_out_ptr + t * num_kv_heads * 2 * HALF,
                       k_cache_ptr, v_cache_ptr, slot_ptr + t, stride_kc, stride_vc, num_kv_heads, kw_ptr, cos, sin,
                       eps, HAS_NORM, HALF, BLOCK_KV)  # fmt: skip


def rope_and_store(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    positions: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    q_weight: torch.Tensor | None,
    k_weight: torch.Tensor | None,
    eps: float,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slots: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One launch for a layer's new tokens: (optional per-head RMSNorm with ``q_weight``/``k_weight``, then)
    RoPE of ``q`` ``[tokens, heads, dim]`` and ``k`` ``[tokens, kv_heads, dim]``, rotated keys and ``v`` written
    to ``k_cache``/``v_cache`` ``[slots, kv_heads, dim]`` at ``slots``. Returns the rotated ``q`` and ``k``
    (contiguous). ``q``/``k``/``v`` may be strided views (slices of a fused QKV output)."""
    tokens, heads, dim = q.shape
    kv_heads = k.shape[1]
    assert q.stride(2) == k.stride(2) == v.stride(2) == 1 and q.stride(1) == k.stride(1) == v.stride(1) == dim
    assert k_cache.stride(1) == v_cache.stride(1) == dim and (q_weight is None) == (k_weight is None)
    q_out = torch.empty((tokens, heads, dim), dtype=q.dtype, device=q.device)
    k_out = torch.empty((tokens, kv_heads, dim), dtype=k.dtype, device=k.device)
    if tokens == 0:
        return q_out, k_out
    _rope_store_kernel[(tokens, 2)](
        q, k, v, q_weight if q_weight is not None else q, k_weight if k_weight is not None else k, cos, sin,
        positions, slots, q_out, k_out, k_cache, v_cache, q.stride(0), k.stride(0), v.stride(0), cos.stride(0),
        k_cache.stride(0), v_cache.stride(0), heads, kv_heads, eps, HAS_NORM=q_weight is not None, HALF=dim // 2,
        BLOCK_Q=triton.next_power_of_2(heads), BLOCK_KV=triton.next_power_of_2(kv_heads),
    )  # fmt: skip
    return q_out, k_out


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


@triton.jit(do_not_specialize_on_alignment=["rows_ptr", "indptr_ptr"])
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
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Flattened page ids of each request (``page_table[rows[b], p * page_size] // page_size`` for its
    pages ``p``), laid out by the page ``indptr`` (device int32, ``[batch + 1]``); int32 ``[total]``, written
    to ``out`` when given. ``max_pages`` bounds any request's page count (host int)."""
    if out is None:
        out = torch.empty(total, dtype=torch.int32, device=page_table.device)
    block = 256
    if total:
        grid = (rows.shape[0], triton.cdiv(max_pages, block))
        _paged_indices_kernel[grid](page_table, rows, indptr, out, page_table.stride(0), page_size, BLOCK=block)
    return out
