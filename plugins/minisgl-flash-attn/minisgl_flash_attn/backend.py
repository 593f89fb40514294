"""The ``flash-attn`` attention backend: FlashAttention's varlen kernel over the paged KV cache.

FlashAttention-4 (``flash_attn.cute.flash_attn_varlen_func`` with ``page_table`` and ``seqused_k``) is used,
or FlashAttention-3 (``flash_attn_interface.flash_attn_with_kvcache``) when it is installed. Metadata is
three device tensors per step (query offsets, KV lengths, a page table of the batch's rows); for CUDA graphs
they live in fixed buffers refilled in place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from minisgl_core.contracts import AttentionBackend, AttentionContext, AttentionLayerSpec, ForwardBatch
from minisgl_flash_attn.plugin import installed_interface


def _load_kernel() -> tuple[str, Callable[..., Any]]:
    kind = installed_interface()
    if kind == "fa3":
        from flash_attn_interface import flash_attn_with_kvcache

        return kind, flash_attn_with_kvcache
    if kind == "fa4":
        from flash_attn.cute import flash_attn_varlen_func

        return kind, flash_attn_varlen_func
    raise ImportError(
        "neither FlashAttention-3 (flash_attn_interface) nor FlashAttention-4 (flash_attn.cute) is installed: "
        'pip install "minisgl-flash-attn[fa4]", or build FlashAttention-3 from source (hopper/ of flash-attention)'
    )


class FlashAttention(AttentionBackend):
    supports_cuda_graph = True

    def __init__(self, ctx: AttentionContext) -> None:
        self.kind, self.kernel = _load_kernel()
        self.ctx = ctx
        self.pool = ctx.kv_pool
        self.max_pages = -(-ctx.max_model_len // ctx.page_size)
        self.page_table: torch.Tensor | None = None
        self.cu_q: torch.Tensor | None = None
        self.kv_lens: torch.Tensor | None = None
        self.max_q = 1
        self._graph_page_table: torch.Tensor | None = None

    def _pages(self, batch: ForwardBatch, width: int) -> torch.Tensor:
        """``[batch, width]`` page ids of the batch's rows (int32)."""
        ps = batch.page_size
        table = batch.page_table[:, : width * ps : ps].index_select(0, batch.rows)
        return table if ps == 1 else table // ps

    def prepare(self, batch: ForwardBatch) -> None:
        width = -(-batch.max_kv_len // batch.page_size)
        self.page_table = self._pages(batch, width)
        self.cu_q, self.kv_lens, self.max_q = batch.cu_q_lens, batch.kv_lens, batch.max_q_len

    def init_cuda_graph(self, max_batch_size: int) -> None:
        self._graph_page_table = torch.zeros(
            (max_batch_size, self.max_pages), dtype=torch.int32, device=self.ctx.device
        )

    def prepare_capture(self, batch: ForwardBatch) -> None:
        self.prepare_replay(batch)

    def prepare_replay(self, batch: ForwardBatch) -> None:
        assert self._graph_page_table is not None, "init_cuda_graph first"
        bs, ps = batch.batch_size, batch.page_size
        target = self._graph_page_table[:bs]
        torch.index_select(batch.page_table[:, : self.max_pages * ps : ps], 0, batch.rows, out=target)
        if ps > 1:
            target.floor_divide_(ps)
        self.page_table = target
        self.cu_q, self.kv_lens, self.max_q = batch.cu_q_lens, batch.kv_lens, 1

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor:
        k_cache, v_cache = self.pool.paged(layer.layer_id)
        if self.kind == "fa3":
            out = self.kernel(
                q, k_cache, v_cache, cache_seqlens=self.kv_lens, page_table=self.page_table,
                cu_seqlens_q=self.cu_q, max_seqlen_q=self.max_q, causal=True, softmax_scale=layer.scale,
            )  # fmt: skip
        else:
            out = self.kernel(
                q, k_cache, v_cache, cu_seqlens_q=self.cu_q, seqused_k=self.kv_lens, page_table=self.page_table,
                max_seqlen_q=self.max_q, causal=True, softmax_scale=layer.scale,
            )  # fmt: skip
        if isinstance(out, tuple):
            out = out[0]
        return out.reshape(q.shape[0], -1)


def create(ctx: AttentionContext) -> FlashAttention:
    """Factory registered as the ``flash-attn`` attention backend."""
    if ctx.device.type != "cuda":
        raise ValueError("the flash-attn attention backend needs a CUDA device")
    return FlashAttention(ctx)
