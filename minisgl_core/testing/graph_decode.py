"""CUDA-graph decode for the attention suite: capture the backend inside the engine's own graph runner,
replay padded batches, and compare the real rows with the reference backend."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from minisgl_core.contracts.attention import AttentionBackend
from minisgl_core.contracts.batch import ForwardBatch, Phase
from minisgl_core.engine.plan import StepPlan
from minisgl_core.kv import KVPool
from minisgl_core.layers.attention import AttentionLayer
from minisgl_core.testing.paged_scene import Extend, PagedScene

BATCHES = ((50,), (1, 17, 64), (3, 9, 16, 31, 33, 100, 2, 65))
"""KV lengths of the decode batches replayed by default: 1, 3 and 8 requests (3 is padded to a larger graph)."""


def check_graph_decode(
    scene: PagedScene,
    backend: AttentionBackend,
    reference: AttentionBackend,
    ref_pool: KVPool,
    tolerance: dict[str, float],
    assert_same_pool: Callable[..., None],
    batches: tuple[tuple[int, ...], ...] = BATCHES,
) -> None:
    """Capture decode graphs of every layer's attention for batch sizes up to the largest of ``batches``,
    then replay each batch (its KV lengths; padded with dummy requests up to a captured size) and compare."""
    from minisgl_core.engine.cuda_graph import CudaGraphRunner

    max_bs = max(len(lengths) for lengths in batches)
    layers = [AttentionLayer(i, scene.num_heads, scene.num_kv_heads, scene.head_dim) for i in range(scene.num_layers)]
    shape = (scene.num_layers, max_bs)
    q_buf = torch.zeros((*shape, scene.num_heads, scene.head_dim), dtype=scene.dtype, device=scene.device)
    k_buf = torch.zeros((*shape, scene.num_kv_heads, scene.head_dim), dtype=scene.dtype, device=scene.device)
    v_buf = torch.zeros_like(k_buf)

    def attention_only(batch: ForwardBatch) -> torch.Tensor:
        bs = batch.batch_size
        outs = [layer(q_buf[i, :bs], k_buf[i, :bs], v_buf[i, :bs], batch) for i, layer in enumerate(layers)]
        return torch.cat(outs, dim=-1)

    last_token = torch.zeros(scene.table.num_rows, dtype=torch.int64, device=scene.device)
    runner = CudaGraphRunner(
        attention_only, backend, scene.pool, scene.table, last_token, scene.page_size, max_bs, scene.device,
    )  # fmt: skip
    runner.capture()
    for lengths in batches:
        n = len(lengths)
        reqs = [scene.request(length) for length in lengths]
        extends = [Extend(r, length - 1, length) for r, length in zip(reqs, lengths)]
        batch = scene.batch(Phase.DECODE, extends)
        plan = StepPlan(
            phase=Phase.DECODE, rows=[r.row for r in reqs], q_lens=[1] * n, kv_lens=list(lengths),
            out_slots=batch.out_slots.cpu(), sample=list(range(n)), sampling=None,  # type: ignore[arg-type]
        )  # fmt: skip
        per_layer = [scene.qkv(n) for _ in layers]
        q, k, v = (torch.stack([x[j] for x in per_layer]) for j in range(3))
        q_buf[:, :n], k_buf[:, :n], v_buf[:, :n] = q, k, v
        with torch.inference_mode():  # as in the engine (Engine.execute)
            _, out = runner.replay(plan)
        ref_batch = dataclasses.replace(batch, attn=reference, kv_pool=ref_pool)
        reference.prepare(ref_batch)
        expect = torch.cat(
            [layer(q[i].float(), k[i].float(), v[i].float(), ref_batch) for i, layer in enumerate(layers)],
            dim=-1,
        )
        where = f"CUDA-graph decode of {n} requests (padded)"
        torch.testing.assert_close(out.float(), expect, **tolerance, msg=lambda m, w=where: f"{w}: {m}")
        for r in reqs:
            scene.release(r)
        assert_same_pool(scene, ref_pool, where, skip_slots=scene.page_size)  # padding writes to page 0
