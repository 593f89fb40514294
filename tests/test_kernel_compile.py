"""Every Triton kernel compiles for the GPU the engine targets (Hopper, sm90), on the CPU machine.

The interpreter tests (``TRITON_INTERPRET=1``) check what the kernels compute, but the interpreter accepts
code the compiler rejects (for example a name bound to tensors of different shapes in the two branches of a
runtime ``if``). Triton's own compiler and the ``ptxas`` shipped with it need no GPU, so compiling each
kernel for sm90 here catches those errors before any device time is spent.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="needs triton")

BF16, F32, I64, I32 = "*bf16", "*fp32", "*i64", "*i32"


def _compile(fn: Any, pointers: dict[str, str], constexprs: dict[str, Any]) -> None:
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {}
    for name in fn.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
        else:
            signature[name] = "fp32" if name == "eps" else "i32"
    triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=GPUTarget("cuda", 90, 32))


def _kernels() -> list[tuple[str, Any, dict[str, str], dict[str, Any]]]:
    from minisgl_core.kernels import sampling_ops as s
    from minisgl_core.kernels import triton_ops as t

    rope = {"cos_ptr": F32, "sin_ptr": F32, "pos_ptr": I64}
    return [
        ("rmsnorm+residual", t._rmsnorm_kernel, dict.fromkeys(["x_ptr", "res_ptr", "w_ptr", "out_ptr"], BF16),
         {"HAS_RESIDUAL": True, "BLOCK": 1024}),
        ("norm_rope", t._norm_rope_kernel, {"x_ptr": BF16, "w_ptr": BF16, "out_ptr": BF16, **rope},
         {"HAS_NORM": True, "HALF": 64, "BLOCK_H": 16}),
        ("rope_store qwen3-0.6b", t._rope_store_kernel,
         {**dict.fromkeys(["q_ptr", "k_ptr", "v_ptr", "qw_ptr", "kw_ptr", "q_out_ptr", "k_out_ptr", "k_cache_ptr",
                           "v_cache_ptr"], BF16), **rope, "slot_ptr": I64},
         {"HAS_NORM": True, "HALF": 64, "BLOCK_Q": 16, "BLOCK_KV": 8}),
        ("rope_store 40 heads, no norm", t._rope_store_kernel,
         {**dict.fromkeys(["q_ptr", "k_ptr", "v_ptr", "qw_ptr", "kw_ptr", "q_out_ptr", "k_out_ptr", "k_cache_ptr",
                           "v_cache_ptr"], BF16), **rope, "slot_ptr": I64},
         {"HAS_NORM": False, "HALF": 64, "BLOCK_Q": 64, "BLOCK_KV": 8}),
        ("silu_mul", t._silu_mul_kernel, {"x_ptr": BF16, "out_ptr": BF16}, {"BLOCK": 1024}),
        ("paged_indices", t._paged_indices_kernel, {"table_ptr": I32, "rows_ptr": I64, "indptr_ptr": I32,
                                                    "out_ptr": I32}, {"BLOCK": 256}),
        ("gumbel_partial", s._gumbel_partial_kernel, {"logits_ptr": BF16, "temp_ptr": F32, "val_ptr": F32,
                                                      "idx_ptr": I32}, {"BLOCK": 1024, "ITERS": 4, "FAST": True}),
        ("argmax_partials", s._argmax_partials_kernel, {"val_ptr": F32, "idx_ptr": I32, "out_ptr": I64},
         {"BLOCK": 16}),
    ]  # fmt: skip


NAMES = ["rmsnorm+residual", "norm_rope", "rope_store qwen3-0.6b", "rope_store 40 heads, no norm", "silu_mul",
         "paged_indices", "gumbel_partial", "argmax_partials"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_kernel_compiles_for_sm90(name: str) -> None:
    kernels = {case[0]: case[1:] for case in _kernels()}
    assert sorted(kernels) == sorted(NAMES), "keep NAMES in step with _kernels()"
    fn, pointers, constexprs = kernels[name]
    _compile(fn, pointers, constexprs)
