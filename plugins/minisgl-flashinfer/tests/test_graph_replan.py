"""The fast re-plan of captured decode wrappers against FlashInfer's own ``plan`` (GPU only).

Two backends over the same scene capture graph wrappers for the same batch sizes; for new decode batches one
re-plans through ``wrapper.plan`` (the reference), the other through :class:`GraphReplanner`. The index
buffers, the plan info and the attention output of every layer must be identical.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from minisgl_core.contracts import Phase
from minisgl_core.testing.paged_scene import Extend, PagedScene

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flashinfer") is None or not torch.cuda.is_available(),
    reason="needs a CUDA GPU and FlashInfer",
)


@pytest.mark.parametrize("page_size", [1, 16])
@torch.inference_mode()  # like the engine: the graph buffers are inference tensors
def test_fast_replan_matches_flashinfer_plan(page_size: int) -> None:
    from minisgl_flashinfer.backend import FlashInferAttention

    scene = PagedScene(
        num_heads=16, num_kv_heads=8, head_dim=128, page_size=page_size, max_requests=8, max_model_len=320,
        dtype=torch.bfloat16, device="cuda", seed=page_size,
    )  # fmt: skip
    reference, fast = FlashInferAttention(scene.context()), FlashInferAttention(scene.context())
    for backend in (reference, fast):
        backend.init_cuda_graph(8)
    assert fast._replanner is not None
    for lengths in ((5,), (1, 17, 64, 300), (3, 9, 16, 31, 33, 100, 2, 65)):
        bs = len(lengths)
        reqs = [scene.request(n) for n in lengths]
        batch = scene.batch(Phase.DECODE, [Extend(r, n - 1, n) for r, n in zip(reqs, lengths)])
        if bs not in fast.graph_decode:
            for backend in (reference, fast):
                backend.prepare_capture(batch)  # both plan through FlashInfer here
        reference._plan_decode(reference.graph_decode[bs], batch)
        fast.prepare_replay(batch)
        torch.cuda.synchronize()
        ref_w, fast_w = reference.graph_decode[bs].wrapper, fast.graph_decode[bs].wrapper
        total = sum(-(-n // page_size) for n in lengths)
        for buf in ("_paged_kv_indptr_buf", "_paged_kv_last_page_len_buf"):
            assert torch.equal(getattr(ref_w, buf), getattr(fast_w, buf)), buf
        assert torch.equal(ref_w._paged_kv_indices_buf[:total], fast_w._paged_kv_indices_buf[:total])
        assert list(ref_w._plan_info) == list(fast_w._plan_info)
        q = torch.randn(bs, scene.num_heads, scene.head_dim, dtype=torch.bfloat16, device="cuda")
        for layer in range(scene.num_layers):
            paged = scene.pool.paged(layer)
            assert torch.equal(ref_w.run(q, paged), fast_w.run(q, paged)), f"layer {layer}, batch {lengths}"
        for r in reqs:
            scene.release(r)


@torch.inference_mode()
def test_graph_batches_too_large_to_split_run_without_the_merge_kernel() -> None:
    """Above ``2 * SMs // kv_heads`` requests FlashInfer never splits the KV sequence; graphs of those sizes are
    planned as outside graphs (no split-KV partials, no merge kernel), and replays still match the reference."""
    from minisgl_flashinfer.backend import FlashInferAttention

    from minisgl_core.builtin.torch_attention import TorchAttention
    from minisgl_core.testing.attention_suite import AttentionBackendSuite
    from minisgl_core.testing.graph_decode import check_graph_decode

    sms = torch.cuda.get_device_properties(0).multi_processor_count
    bs = 2 * sms // 8 + 3  # three requests more than FlashInfer could ever split
    batches = (
        tuple(1 + (37 * i) % 300 for i in range(bs)),
        tuple(2 + (53 * i) % 280 for i in range(bs)),  # other lengths: the same captured launch must fit
        (5, 70, 300),  # a small, split graph batch alongside
    )
    scene = PagedScene(
        num_heads=16, num_kv_heads=8, head_dim=128, page_size=16, max_requests=bs + 1, max_model_len=320,
        num_pages=1200, dtype=torch.bfloat16, device="cuda", seed=7,
    )  # fmt: skip
    backend = FlashInferAttention(scene.context())
    ref_pool = scene.pool_copy(torch.float32)
    reference = TorchAttention(scene.context(ref_pool, torch.float32))
    check_graph_decode(
        scene, backend, reference, ref_pool, {"atol": 3e-2, "rtol": 3e-2}, AttentionBackendSuite.assert_same_pool,
        batches,
    )  # fmt: skip
    replanner = backend._replanner
    assert replanner is not None and bs > replanner.max_split_batch
    assert replanner.captured[bs][-1] == 0, "the large graph batch was captured with split-KV"
