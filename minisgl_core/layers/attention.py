"""The attention layer model plugins use: it owns no weights, writes the step's keys and values into the KV
pool, and defers attention to the selected backend."""

from __future__ import annotations

import torch
from torch import nn

from minisgl_core.contracts.batch import ForwardBatch
from minisgl_core.kernels import ops, rope_kernel_fits, use_triton
from minisgl_core.layers.norm import RMSNorm
from minisgl_core.layers.rotary import RotaryEmbedding


class AttentionLayer(nn.Module):
    """Attention of one decoder layer over the paged KV cache.

    ``forward(q, k, v, batch)`` takes ``q`` ``[tokens, heads, head_dim]`` and ``k``/``v``
    ``[tokens, kv_heads, head_dim]`` (this rank's heads), stores ``k``/``v`` at ``batch.out_slots`` of this
    layer in ``batch.kv_pool``, and returns the backend's output ``[tokens, heads * head_dim]``.
    Given ``rope`` (and, for Qwen3-style models, ``q_norm``/``k_norm``), ``q`` and ``k`` are not rotated yet:
    the layer normalises and rotates them at ``batch.positions`` first; on the GPU that, the KV store and
    nothing else is one fused kernel per layer.
    """

    def __init__(
        self, layer_id: int, num_heads: int, num_kv_heads: int, head_dim: int, scale: float | None = None
    ) -> None:
        super().__init__()
        if num_heads % num_kv_heads:
            raise ValueError(f"{num_heads} query heads cannot be grouped over {num_kv_heads} kv heads")
        self.layer_id = layer_id
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.scale = scale if scale is not None else head_dim**-0.5

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        batch: ForwardBatch,
        rope: RotaryEmbedding | None = None,
        q_norm: RMSNorm | None = None,
        k_norm: RMSNorm | None = None,
    ) -> torch.Tensor:
        if batch.attn is None or batch.kv_pool is None:
            raise RuntimeError("ForwardBatch.attn and .kv_pool must be set by the engine before forward")
        pool = batch.kv_pool
        k_cache, v_cache = pool.k(self.layer_id), pool.v(self.layer_id)
        if rope is not None and use_triton(q) and (q_norm is None) == (k_norm is None) and _fusable(q, k, v):
            normed = q_norm is not None and k_norm is not None
            q_w, k_w, eps = (q_norm.weight, k_norm.weight, q_norm.eps) if normed else (None, None, 1e-6)  # type: ignore[union-attr]
            q, k = ops().rope_and_store(
                q, k, v, batch.positions, rope.cos, rope.sin, q_w, k_w, eps, k_cache, v_cache, batch.out_slots
            )
        else:
            if rope is not None:
                q, k = rope(batch.positions, q, k, q_norm, k_norm)
            pool.store(self.layer_id, batch.out_slots, k, v)
        return batch.attn.forward(q, k, v, self, batch)


def _fusable(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> bool:
    """Heads laid out contiguously (what the fused kernel indexes), strided tokens allowed."""
    return rope_kernel_fits(q.shape[2]) and all(t.stride(2) == 1 and t.stride(1) == t.shape[2] for t in (q, k, v))
