"""The fused Triton kernels against the plain PyTorch code they replace.

They run on a GPU when there is one, and otherwise on the CPU through Triton's interpreter
(``TRITON_INTERPRET=1``) when Triton is installed; without either they are skipped.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

HAVE_TRITON = importlib.util.find_spec("triton") is not None
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    not HAVE_TRITON or (DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1"),
    reason="needs Triton on a GPU, or TRITON_INTERPRET=1 on the CPU",
)


if HAVE_TRITON:
    import triton
    import triton.language as tl

    from minisgl_core.kernels import sampling_ops

    @triton.jit
    def _draw_exponential(out_ptr, seed, FAST: tl.constexpr, BLOCK: tl.constexpr):
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(out_ptr + offsets, sampling_ops._exponential(seed, offsets, FAST))


@pytest.fixture(scope="module")
def ops():  # noqa: ANN201
    from minisgl_core.kernels import triton_ops

    return triton_ops


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rmsnorm_with_and_without_residual(ops, dtype: torch.dtype) -> None:  # noqa: ANN001
    from minisgl_core.layers.norm import RMSNorm

    norm = RMSNorm(96, 1e-6).to(DEVICE)
    norm.weight.data = torch.randn(96, device=DEVICE).to(dtype)
    x = torch.randn(5, 96, device=DEVICE, dtype=dtype)
    res = torch.randn(5, 96, device=DEVICE, dtype=dtype)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
    os.environ["MINISGL_DISABLE_TRITON"] = "1"
    try:
        ref_plain = norm._norm(x)
        ref_out, ref_res = (x + res).float(), x + res
        ref_out = norm._norm(ref_res)
    finally:
        del os.environ["MINISGL_DISABLE_TRITON"]
    out, _ = ops.rmsnorm(x, norm.weight, 1e-6)
    torch.testing.assert_close(out, ref_plain, **tol)
    res_copy = res.clone()
    out, new_res = ops.rmsnorm(x, norm.weight, 1e-6, res_copy)
    assert new_res is res_copy
    torch.testing.assert_close(new_res, ref_res, **tol)
    torch.testing.assert_close(out, ref_out, **tol)


@pytest.mark.parametrize("with_norm", [False, True])
def test_norm_rope_on_a_strided_qkv_slice(ops, with_norm: bool) -> None:  # noqa: ANN001
    from minisgl_core.layers.norm import RMSNorm
    from minisgl_core.layers.rotary import RotaryEmbedding

    rope = RotaryEmbedding(16, 64, 10000.0, None).to(DEVICE)
    qkv = torch.randn(7, 3 * 5 * 16, device=DEVICE)
    q = qkv[:, : 5 * 16].view(7, 5, 16)  # a strided view, as the model passes it; 5 heads: a masked tile
    positions = torch.tensor([0, 3, 5, 9, 20, 33, 63], device=DEVICE)
    norm = RMSNorm(16).to(DEVICE) if with_norm else None
    if norm is not None:
        norm.weight.data = torch.randn(16, device=DEVICE)
    expect = norm._norm(q) if norm is not None else q
    cos, sin = rope.cos[positions].unsqueeze(1), rope.sin[positions].unsqueeze(1)
    half = 8
    rotated = torch.cat((-expect[..., half:], expect[..., :half]), dim=-1)
    expect = expect * cos + rotated * sin
    weight = norm.weight if norm is not None else None
    out = ops.norm_rope(q, positions, rope.cos, rope.sin, weight, 1e-6)
    torch.testing.assert_close(out, expect, atol=1e-5, rtol=1e-5)


def test_silu_and_mul(ops) -> None:  # noqa: ANN001
    x = torch.randn(3, 2 * 1500, device=DEVICE)
    expect = torch.nn.functional.silu(x[:, :1500]) * x[:, 1500:]
    torch.testing.assert_close(ops.silu_and_mul(x), expect, atol=1e-5, rtol=1e-5)


def test_gumbel_sampling_greedy_rows_and_distribution(ops) -> None:  # noqa: ANN001
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05] + [0.0] * 3000)
    logits = probs.clamp_min(1e-30).log().repeat(512, 1).to(DEVICE)
    temps = torch.ones(512, device=DEVICE)
    temps[0] = 0.0
    out = ops.sample_gumbel(logits, temps, seed=1)
    assert out[0].item() == 0  # greedy row
    freq = torch.bincount(out[1:].cpu(), minlength=4)[:4].float() / 511
    assert torch.allclose(freq, probs[:4], atol=0.07), freq
    again = ops.sample_gumbel(logits, temps, seed=1)
    assert torch.equal(out, again)  # same seed, same draw


def test_sampling_noise_is_exponential_and_keyed_by_the_seed(ops) -> None:  # noqa: ANN001
    """The sampler's Exp(1) draws (Gumbel noise is -ln of them): moments, both tails (the series branch near
    0 and the logarithm's), and seeds giving the same or unrelated draws. Compiled, with the fast log."""
    n, block = 1 << 18, 4096

    def draw(seed: int) -> torch.Tensor:
        out = torch.empty(n, dtype=torch.float32, device=DEVICE)
        _draw_exponential[(n // block,)](out, seed, FAST=DEVICE == "cuda", BLOCK=block)
        return out.cpu().double()

    e = draw(11)
    assert torch.isfinite(e).all() and (e > 0).all()
    assert abs(e.mean().item() - 1.0) < 0.01 and abs(e.var().item() - 1.0) < 0.03
    for threshold in (1.0 / 128.0, 0.1, 1.0, 4.0):  # P(E < t) = 1 - exp(-t)
        expect = 1.0 - torch.exp(torch.tensor(-threshold, dtype=torch.float64)).item()
        assert abs((e < threshold).double().mean().item() - expect) < 4 * (expect * (1 - expect) / n) ** 0.5 + 1e-4
    assert torch.equal(e, draw(11))
    assert abs(torch.corrcoef(torch.stack([e, draw(12)]))[0, 1].item()) < 0.01


def test_paged_kv_indices(ops) -> None:  # noqa: ANN001
    table = torch.arange(6 * 64, dtype=torch.int32, device=DEVICE).view(6, 64) * 4
    rows = torch.tensor([3, 0, 5], device=DEVICE)
    kv_lens = [9, 1, 20]
    ps = 4
    pages = [-(-n // ps) for n in kv_lens]
    indptr = torch.tensor([0, pages[0], pages[0] + pages[1], sum(pages)], dtype=torch.int32, device=DEVICE)
    out = ops.paged_kv_indices(table, rows, indptr, sum(pages), max(pages), ps)
    expect = torch.cat([table[r, : p * ps : ps] // ps for r, p in zip(rows.tolist(), pages)])
    assert out.tolist() == expect.tolist()


def test_gumbel_sampling_greedy_matches_argmax_across_chunks(ops) -> None:  # noqa: ANN001
    vocab = 40_000  # several programs per row; the maxima sit in different chunks, with a tie in row 2
    logits = torch.randn(3, vocab, device=DEVICE)
    logits[0, 39_999] = 50.0
    logits[1, 17] = 50.0
    logits[2, 20_000] = logits[2, 35_000] = 50.0
    out = ops.sample_gumbel(logits, torch.zeros(3, device=DEVICE), seed=3)
    assert out.tolist() == [39_999, 17, 20_000]
    hot = torch.full((2, vocab), -1e4, device=DEVICE)
    hot[:, [5, 30_000]] = 0.0  # two equally likely tokens in different chunks
    draws = torch.stack([ops.sample_gumbel(hot, torch.ones(2, device=DEVICE), seed=s) for s in range(60)])
    assert set(draws.flatten().tolist()) == {5, 30_000}


@pytest.mark.parametrize("with_norm", [False, True])
def test_rope_and_store_matches_norm_rope_then_store(ops, with_norm: bool) -> None:  # noqa: ANN001
    from minisgl_core.layers.rotary import RotaryEmbedding

    tokens, heads, kv_heads, dim = 5, 6, 3, 16  # head counts that are not powers of two: masked tiles
    rope = RotaryEmbedding(dim, 64, 10000.0, None).to(DEVICE)
    qkv = torch.randn(tokens, (heads + 2 * kv_heads) * dim, device=DEVICE)
    q = qkv[:, : heads * dim].view(tokens, heads, dim)
    k = qkv[:, heads * dim : (heads + kv_heads) * dim].view(tokens, kv_heads, dim)
    v = qkv[:, (heads + kv_heads) * dim :].view(tokens, kv_heads, dim)
    positions = torch.tensor([0, 7, 8, 30, 63], device=DEVICE)
    slots = torch.tensor([3, 9, 4, 12, 0], device=DEVICE)
    qw = torch.randn(dim, device=DEVICE) if with_norm else None
    kw = torch.randn(dim, device=DEVICE) if with_norm else None
    k_cache = torch.zeros(16, kv_heads, dim, device=DEVICE)
    v_cache = torch.zeros_like(k_cache)
    q_out, k_out = ops.rope_and_store(q, k, v, positions, rope.cos, rope.sin, qw, kw, 1e-6, k_cache, v_cache, slots)
    torch.testing.assert_close(q_out, ops.norm_rope(q, positions, rope.cos, rope.sin, qw, 1e-6))
    torch.testing.assert_close(k_out, ops.norm_rope(k, positions, rope.cos, rope.sin, kw, 1e-6))
    torch.testing.assert_close(k_cache[slots], k_out)
    torch.testing.assert_close(v_cache[slots], v)
    untouched = torch.ones(16, dtype=torch.bool, device=DEVICE)
    untouched[slots] = False
    assert not k_cache[untouched].any() and not v_cache[untouched].any()


def test_rope_kernels_only_take_power_of_two_halves() -> None:
    from minisgl_core.kernels import rope_kernel_fits

    assert [d for d in (16, 32, 64, 80, 96, 128, 256) if rope_kernel_fits(d)] == [16, 32, 64, 128, 256]
