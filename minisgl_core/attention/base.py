"""The attention-backend extension point.

A backend computes attention over the paged KV cache. The engine calls :meth:`AttentionBackend.prepare`
once per step (host-side planning, metadata shared by all layers), then every attention layer writes the
step's keys/values into the pool and calls :meth:`AttentionBackend.forward`, which attends. Backends that can
run decode inside CUDA graphs keep their metadata in buffers allocated once by
:meth:`AttentionBackend.init_cuda_graph` and refilled in place by :meth:`AttentionBackend.prepare_replay`;
backends that can run prefill chunks inside a CUDA graph do the same through the three ``*prefill_graph*``
methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from minisgl_core.engine.batch import ForwardBatch
from minisgl_core.kv.pool import KVPool

if TYPE_CHECKING:
    from minisgl_core.layers.attention import AttentionLayer


@dataclass(frozen=True)
class AttentionContext:
    """What an attention-backend factory is told about the engine (one per engine process / TP rank)."""

    num_heads: int
    """Query heads on this rank."""
    num_kv_heads: int
    """Key/value heads on this rank."""
    head_dim: int
    num_layers: int
    page_size: int
    kv_pool: KVPool
    page_table: torch.Tensor
    """``[rows, max_model_len]`` int32 on the device: the KV slot of every position of every request row."""
    max_batch_size: int
    max_model_len: int
    dtype: torch.dtype
    device: torch.device


class AttentionBackend(ABC):
    """Paged attention for one engine process. One instance serves all layers."""

    supports_cuda_graph: bool = False
    """True when decode steps may be captured: then the three graph methods below must be implemented."""
    supports_prefill_graph: bool = False
    """True when prefill steps of a fixed token count may be captured: then the three prefill-graph methods
    below must be implemented."""

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Plan the step: build whatever metadata :meth:`forward` needs from ``batch``.

        Called by the engine once per step, before the model runs, in the engine process.
        """

    @abstractmethod
    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        layer: AttentionLayer,
        batch: ForwardBatch,
    ) -> torch.Tensor:
        """Attend over the pool. ``q`` is ``[tokens, heads, head_dim]`` (rotated); ``k``/``v``
        ``[tokens, kv_heads, head_dim]`` are the step's new keys/values, already stored by the layer at
        ``batch.out_slots`` of layer ``layer.layer_id`` (read them from the pool, or use them directly).
        Queries are causal within each request and see its cached prefix. Returns
        ``[tokens, heads * head_dim]``. Called by every attention layer during the model's forward pass;
        must not write the pool.
        """

    def init_cuda_graph(self, max_batch_size: int) -> None:
        """Allocate fixed buffers for decode batches up to ``max_batch_size`` (once, before any capture).
        The engine calls this and the two methods below under ``torch.inference_mode()``, so the buffers are
        inference tensors that may only be written in inference mode."""
        raise NotImplementedError(f"{type(self).__name__} does not support CUDA graphs")

    def prepare_capture(self, batch: ForwardBatch) -> None:
        """Like :meth:`prepare` for a dummy decode batch about to be captured; must use the fixed buffers."""
        raise NotImplementedError(f"{type(self).__name__} does not support CUDA graphs")

    def prepare_replay(self, batch: ForwardBatch) -> None:
        """Refill the fixed buffers from a real decode batch (padded to ``batch.padded_batch_size``) before
        the graph captured for that size replays. Must not allocate or synchronise."""
        raise NotImplementedError(f"{type(self).__name__} does not support CUDA graphs")

    def init_prefill_graph(self, max_requests: int) -> None:
        """Allocate fixed buffers for prefill steps of up to ``max_requests`` requests (once, before the
        capture). Called by the engine process at start-up, under ``torch.inference_mode()``, like the two
        methods below."""
        raise NotImplementedError(f"{type(self).__name__} does not capture prefill steps")

    def prepare_prefill_capture(self, batch: ForwardBatch) -> None:
        """Like :meth:`prepare` for the dummy prefill batch about to be captured, planned as a batch of
        ``batch.padded_batch_size`` requests (the real ones, then empty ones) in the fixed buffers."""
        raise NotImplementedError(f"{type(self).__name__} does not capture prefill steps")

    def prepare_prefill_replay(self, batch: ForwardBatch) -> bool:
        """Plan a real prefill batch (the captured token count, padded to ``batch.padded_batch_size``
        requests) into the fixed buffers. Returns False when the captured launch cannot serve it: the engine
        then calls :meth:`prepare` and runs the step without the graph. Must not wait for earlier steps to
        finish."""
        raise NotImplementedError(f"{type(self).__name__} does not capture prefill steps")
