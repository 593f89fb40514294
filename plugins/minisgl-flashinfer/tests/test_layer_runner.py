"""The prefill :class:`LayerRunner` against FlashInfer's own ``run`` (GPU only): after one plan, every layer's
output must be bit-identical, and the recorded fast call must really be in use."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from minisgl_core.engine.batch import Phase
from minisgl_core.testing.paged_scene import Extend, PagedScene

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("flashinfer") is None or not torch.cuda.is_available(),
    reason="needs a CUDA GPU and FlashInfer",
)


@pytest.mark.parametrize("page_size", [1, 16])
@torch.inference_mode()
def test_layer_runner_matches_flashinfer_run(page_size: int) -> None:
    from minisgl_flashinfer.backend import FlashInferAttention

    scene = PagedScene(
        num_heads=16, num_kv_heads=8, head_dim=128, page_size=page_size, max_requests=8, max_model_len=320,
        dtype=torch.bfloat16, device="cuda", seed=page_size,
    )  # fmt: skip
    backend = FlashInferAttention(scene.context())
    # new prompts, a chunk after a cached prefix, and a single-token extend, in two different steps
    for steps in (((0, 37), (0, 120)), ((17, 80), (0, 5), (299, 300), (64, 200))):
        reqs = [scene.request(end) for _, end in steps]
        batch = scene.batch(Phase.PREFILL, [Extend(r, start, end) for r, (start, end) in zip(reqs, steps)])
        backend.prepare(batch)
        assert backend.active is backend.prefill_runner
        tokens = sum(end - start for start, end in steps)
        for layer in range(scene.num_layers):
            q = torch.randn(tokens, scene.num_heads, scene.head_dim, dtype=torch.bfloat16, device="cuda")
            paged = scene.pool.paged(layer)
            fast = backend.active.run(q, paged)
            assert backend.prefill_runner._args is not None, "the first layer's call was not recorded"
            assert torch.equal(fast, backend.prefill.wrapper.run(q, paged)), f"layer {layer}, steps {steps}"
        for r in reqs:
            scene.release(r)
