"""The attention-backend contract.

A backend computes attention over the paged KV cache. The engine calls :meth:`AttentionBackend.prepare`
once per step (host-side planning, metadata shared by all layers), then every attention layer writes the
step's keys/values into the pool and calls :meth:`AttentionBackend.forward`, which attends. Backends that can
run decode inside CUDA graphs keep their metadata in buffers allocated once by
:meth:`AttentionBackend.init_cuda_graph` and refilled in place by :meth:`AttentionBackend.prepare_replay`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from minisgl_core.contracts.batch import AttentionLayerSpec, ForwardBatch, KVStore

HOST_RING = 4
"""Pinned host buffers to use in turn for a per-step host-to-device copy (the engine's graph runner and
backends' re-plans): the scheduler runs at most one step ahead of the GPU, so a buffer is rewritten only after
the copy that read it has run."""


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
    kv_pool: KVStore
    page_table: torch.Tensor
    """``[rows, max_model_len]`` int32 on the device: the KV slot of every position of every request row
    (see :class:`~minisgl_core.contracts.ForwardBatch` for what unused entries hold)."""
    max_batch_size: int
    max_model_len: int
    dtype: torch.dtype
    device: torch.device
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's ``--attention-option KEY=VALUE`` flags (``LLM(attention_options=...)``), unparsed strings.
    With ``--attention PREFILL,DECODE`` both backends receive them."""


class AttentionBackend(ABC):
    """Paged attention for one engine process. One instance serves all layers."""

    supports_cuda_graph: bool = False
    """True when decode steps may be captured: then the three graph methods below must be implemented."""

    @abstractmethod
    def prepare(self, batch: ForwardBatch) -> None:
        """Plan the step: build whatever metadata :meth:`forward` needs from ``batch``.

        Called by the engine once per step, before the model runs, in the engine process.
        """

    @abstractmethod
    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor:
        """Attend over the pool. ``q`` is ``[tokens, heads, head_dim]`` (rotated); ``k``/``v``
        ``[tokens, kv_heads, head_dim]`` are the step's new keys/values, already stored by the layer at
        ``batch.out_slots`` of layer ``layer.layer_id`` (read them from the pool, or use them directly).
        Queries are causal within each request and see its cached prefix. Returns
        ``[tokens, heads * head_dim]`` in ``q``'s dtype. Called by every attention layer during the model's
        forward pass; must not write the pool. Prefill and mixed steps replayed from piecewise CUDA graphs
        call it from the engine instead, between graph pieces and never inside a capture, with ``q``/``k``/``v``
        in engine-owned buffers: ``batch`` is then the step as prepared, so nothing else changes.
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
