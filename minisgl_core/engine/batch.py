"""One engine step as the model and the attention backend see it: device tensors plus a few host ints."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from minisgl_core.attention.base import AttentionBackend
    from minisgl_core.kv.pool import KVPool


class Phase(str, Enum):
    PREFILL = "prefill"
    """Requests extend by one or more tokens each (new prompts, chunks, resumed requests)."""
    DECODE = "decode"
    """Every request extends by exactly one token (its last sampled one)."""


@dataclass
class ForwardBatch:
    """The tokens of one step, flattened request after request.

    For request ``i`` the step computes ``q_lens[i]`` new tokens at positions
    ``kv_lens[i] - q_lens[i] .. kv_lens[i] - 1``; their keys/values go to ``out_slots`` and attention reads
    ``page_table[rows[i], :kv_lens[i]]``. ``sample_indices`` are the flat token indices whose logits are
    sampled (the last token of each request that completes its prompt or decodes).
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
    attn: AttentionBackend | None = None
    """The backend serving this step's phase; set by the engine before the model runs."""
    kv_pool: KVPool | None = None
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
