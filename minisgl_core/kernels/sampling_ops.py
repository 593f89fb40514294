"""The sampling kernel of the decode hot path: temperature + Gumbel-max over the vocabulary, split over
several programs per row, with counter-hash noise. Re-exported by :mod:`minisgl_core.kernels.triton_ops`
(``ops().sample_gumbel``)."""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def _neg_log(x, FAST: tl.constexpr):
    """``-ln(x)``: compiled, the hardware's approximate ``lg2`` (a few instructions; the exact ``logf`` is a
    long polynomial, and this kernel takes two logarithms per vocabulary entry); interpreted, NumPy's."""
    if FAST:
        return -libdevice.fast_logf(x)
    else:
        return -tl.log(x)


@triton.jit
def _exponential(seed, offsets, FAST: tl.constexpr):
    """Exp(1) draws, a pure function of ``(seed, offsets)``. The offset, spread by a golden-ratio multiply and
    keyed by the seed, goes through a 32-bit integer hash with low bias (two multiply-xorshift rounds,
    "lowbias32"; a handful of integer operations where Philox-4x32-10 takes ten rounds of multiplies per
    four numbers). Its top 24 bits give ``u`` in (0, 1) and the exact ``v = 1 - u``; the draw is
    ``-ln(u)``, or its series in ``v`` where ``v`` is small and ``u`` too close to 1 for the logarithm."""
    x = (offsets.to(tl.uint32) * 0x9E3779B1) ^ seed.to(tl.uint32)
    x ^= x >> 16
    x *= 0x7FEB352D
    x ^= x >> 15
    x *= 0x846CA68B
    x ^= x >> 16
    m = x >> 8
    u = (m.to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    v = ((16777215 - m).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    series = v * (1.0 + v * (0.5 + v * (1.0 / 3.0)))  # -ln(1 - v), relative error below v**3 / 4
    return tl.where(v < 1.0 / 128.0, series, _neg_log(u, FAST))


@triton.jit
def _gumbel_block(v, seed, cols, row_base, vocab, inv_temp, sampled, best_val, best_idx, FAST: tl.constexpr):
    """Fold one block of logits into the running best: Gumbel noise ``-ln(E)`` for ``E ~ Exp(1)``."""
    mask = cols < vocab
    noise = _neg_log(_exponential(seed, row_base + cols, FAST), FAST)
    v = v.to(tl.float32) * inv_temp + noise * sampled
    v = tl.where(mask, v, float("-inf"))
    better = v > best_val
    return tl.where(better, v, best_val), tl.where(better, cols, best_idx)


@triton.jit(do_not_specialize=["seed"])
def _gumbel_partial_kernel(logits_ptr, temp_ptr, val_ptr, idx_ptr, stride, seed, vocab, num_chunks,
                           BLOCK: tl.constexpr, ITERS: tl.constexpr, FAST: tl.constexpr):  # fmt: skip
    """Program (row, chunk): the best (noisy logit, token) of ``ITERS * 4 * BLOCK`` tokens of one row."""
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    temp = tl.load(temp_ptr + row)
    sampled = (temp > 0).to(tl.float32)  # 0 for greedy rows: no noise, no scaling
    inv_temp = sampled / (temp + (1.0 - sampled)) + (1.0 - sampled)
    lanes = tl.arange(0, BLOCK)
    bv = tl.full((BLOCK,), float("-inf"), tl.float32)  # best noisy value and its token, per lane
    bi = tl.zeros((BLOCK,), tl.int32)
    ptr = logits_ptr + row.to(tl.int64) * stride
    row_base = row * vocab  # noise offsets: row-major over the batch (wraps at 2**32, harmlessly)
    for it in range(ITERS):
        c = (chunk * ITERS + it) * 4 * BLOCK + lanes
        v0 = tl.load(ptr + c, mask=c < vocab, other=0.0)  # four loads in flight before any math
        v1 = tl.load(ptr + c + BLOCK, mask=c + BLOCK < vocab, other=0.0)
        v2 = tl.load(ptr + c + 2 * BLOCK, mask=c + 2 * BLOCK < vocab, other=0.0)
        v3 = tl.load(ptr + c + 3 * BLOCK, mask=c + 3 * BLOCK < vocab, other=0.0)
        bv, bi = _gumbel_block(v0, seed, c, row_base, vocab, inv_temp, sampled, bv, bi, FAST)
        bv, bi = _gumbel_block(v1, seed, c + BLOCK, row_base, vocab, inv_temp, sampled, bv, bi, FAST)
        bv, bi = _gumbel_block(v2, seed, c + 2 * BLOCK, row_base, vocab, inv_temp, sampled, bv, bi, FAST)
        bv, bi = _gumbel_block(v3, seed, c + 3 * BLOCK, row_base, vocab, inv_temp, sampled, bv, bi, FAST)
    top = tl.max(bv, axis=0)
    idx = tl.min(tl.where(bv == top, bi, vocab), axis=0)
    tl.store(val_ptr + row * num_chunks + chunk, top)
    tl.store(idx_ptr + row * num_chunks + chunk, idx)


@triton.jit
def _argmax_partials_kernel(val_ptr, idx_ptr, out_ptr, num_chunks, vocab, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    c = tl.arange(0, BLOCK)
    mask = c < num_chunks
    val = tl.load(val_ptr + row * num_chunks + c, mask=mask, other=float("-inf"))
    idx = tl.load(idx_ptr + row * num_chunks + c, mask=mask, other=vocab)
    top = tl.max(val, axis=0)
    tl.store(out_ptr + row, tl.min(tl.where(val == top, idx, vocab), axis=0).to(tl.int64))


_SAMPLE_BLOCK, _SAMPLE_ITERS = 1024, 4  # tokens per program: 16384 (10 programs per row for a 152k vocab)


def sample_gumbel(logits: torch.Tensor, temperatures: torch.Tensor, seed: int) -> torch.Tensor:
    """Greedy where ``temperature == 0``, else a sample from ``softmax(logits / T)`` (Gumbel-max with
    hashed noise keyed by ``seed``, row and token). Each row is split over several programs (so a small
    batch still fills the GPU), then a second kernel picks each row's best; ties go to the lowest token."""
    rows, vocab = logits.shape
    per_program = _SAMPLE_BLOCK * 4 * _SAMPLE_ITERS
    chunks = triton.cdiv(vocab, per_program)
    val = torch.empty((rows, chunks), dtype=torch.float32, device=logits.device)
    idx = torch.empty((rows, chunks), dtype=torch.int32, device=logits.device)
    out = torch.empty(rows, dtype=torch.int64, device=logits.device)
    if rows == 0:
        return out
    _gumbel_partial_kernel[(rows, chunks)](
        logits, temperatures, val, idx, logits.stride(0), seed, vocab, chunks,
        BLOCK=_SAMPLE_BLOCK, ITERS=_SAMPLE_ITERS, FAST=os.environ.get("TRITON_INTERPRET") != "1",
    )  # fmt: skip
    _argmax_partials_kernel[(rows,)](val, idx, out, chunks, vocab, BLOCK=triton.next_power_of_2(chunks))
    return out
