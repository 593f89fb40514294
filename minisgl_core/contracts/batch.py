"""One engine step as the model and the attention backend see it: device tensors plus a few host ints.

The engine builds a :class:`ForwardBatch` per step and hands it to the model, whose attention layers store
the step's keys and values in ``batch.kv_pool`` and call ``batch.attn.forward``. The two small Protocols
below name exactly what the batch carries of the KV pool and of the backend, so this module needs neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import torch


class Phase(str, Enum):
    PREFILL = "prefill"
    """Requests extend by one or more tokens each (new prompts, chunks, resumed requests)."""
    DECODE = "decode"
    """Every request extends by exactly one token (its last sampled one)."""


class KVStore(Protocol):
    """The engine's KV pool as layers and backends use it (``minisgl_core.kv.KVPool`` implements it).

    A slot is ``page * page_size + offset``. Slots of page 0 are never given to a request: padded (dummy)
    requests write there, so it holds garbage; every other slot holds what was last stored in it (zeros
    before that), whether or not a request still uses it.
    """

    num_pages: int
    page_size: int
    num_kv_heads: int
    head_dim: int
    dtype: torch.dtype

    def k(self, layer: int) -> torch.Tensor:
        """Keys of ``layer``: ``[slots, kv_heads, head_dim]``."""
        ...

    def v(self, layer: int) -> torch.Tensor:
        """Values of ``layer``: ``[slots, kv_heads, head_dim]``."""
        ...

    def paged(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of ``layer`` as ``[pages, page_size, kv_heads, head_dim]`` views of the same memory."""
        ...

    def store(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write ``k``/``v`` (``[tokens, kv_heads, head_dim]``) into ``slots`` of ``layer``."""
        ...


class AttentionLayerSpec(Protocol):
    """What a backend learns about the layer it attends for (``minisgl_core.layers.AttentionLayer``)."""

    layer_id: int
    num_heads: int
    """Query heads on this rank."""
    num_kv_heads: int
    head_dim: int
    scale: float


class BatchAttention(Protocol):
    """The backend serving a step, as attention layers call it (see ``AttentionBackend.forward``)."""

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor: ...


@dataclass
class ForwardBatch:
    """The tokens of one step, flattened request after request.

    For request ``i`` the step computes ``q_lens[i]`` new tokens at positions
    ``kv_lens[i] - q_lens[i] .. kv_lens[i] - 1``; their keys/values go to ``out_slots`` and attention reads
    ``page_table[rows[i], :kv_lens[i]]``. ``sample_indices`` are the flat token indices whose logits are
    sampled (the last token of each request that completes its prompt or decodes).

    The page table holds one slot per token: ``page_table[row, p]`` is the KV slot of position ``p`` of the
    request in ``row``. Entries at or beyond a row's ``kv_len`` are stale (left by earlier requests of that
    row) and must not be read. The last row is the dummy row of padded requests: its entries are 0 (slots of
    the reserved page 0).
    """

    phase: Phase
    input_ids: torch.Tensor  # [T] int64
    positions: torch.Tensor  # [T] int64
    out_slots: torch.Tensor  # [T] int64
    rows: torch.Tensor  # [B] int64
    q_lens: torch.Tensor  # [B] int32
    kv_lens: torch.Tensor  # [B] int32
    cu_q_lens: torch.Tensor  # [B + 1] int32
    cu_kv_lens: torch.Tensor  # [B + 1] int32
    sample_indices: torch.Tensor  # [S] int64
    q_lens_host: list[int]
    kv_lens_host: list[int]
    page_table: torch.Tensor  # [rows, max_model_len] int32, slot of every position
    page_size: int
    attn: BatchAttention | None = None
    """The backend serving this step's phase; set by the engine before the model runs."""
    kv_pool: KVStore | None = None
    """Where attention layers write the step's keys and values (set by the engine)."""
    padded_batch_size: int | None = None
    """When the step replays a CUDA graph, the captured batch size (>= ``batch_size``)."""

    @property
    def batch_size(self) -> int:
        return len(self.q_lens_host)

    @property
    def num_tokens(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def max_q_len(self) -> int:
        return max(self.q_lens_host, default=0)

    @property
    def max_kv_len(self) -> int:
        return max(self.kv_lens_host, default=0)
