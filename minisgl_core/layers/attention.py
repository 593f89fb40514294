"""The attention layer model plugins use: it owns no weights and defers to the selected backend."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from minisgl_core.engine.batch import ForwardBatch


class AttentionLayer(nn.Module):
    """Attention of one decoder layer over the paged KV cache.

    ``forward(q, k, v, batch)`` takes rotated ``q`` ``[tokens, heads, head_dim]`` and ``k``/``v``
    ``[tokens, kv_heads, head_dim]`` (this rank's heads) and returns ``[tokens, heads * head_dim]``.
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

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        if batch.attn is None:
            raise RuntimeError("ForwardBatch.attn is not set: the engine must pick a backend before forward")
        return batch.attn.forward(q, k, v, self, batch)
