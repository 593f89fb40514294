"""The model-architecture contract: what a model plugin is told, builds, and implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from minisgl_core.contracts.batch import ForwardBatch
from minisgl_core.contracts.model_config import ModelConfig


@dataclass(frozen=True)
class TPInfo:
    """A process's place in its tensor-parallel group."""

    rank: int = 0
    size: int = 1

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


@dataclass(frozen=True)
class ModelContext:
    """What a model factory is told. The factory runs with ``dtype`` as torch's default dtype and
    ``device`` as the default device, so parameters created with ``torch.empty`` land where they belong."""

    config: ModelConfig
    dtype: torch.dtype
    device: torch.device
    tp: TPInfo
    max_model_len: int


class CausalLM(nn.Module, ABC):
    """A decoder-only language model built from ``minisgl_core.layers``."""

    @abstractmethod
    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        """Run one step over ``batch.input_ids`` at ``batch.positions`` and return the logits of the tokens
        at ``batch.sample_indices``: ``[len(sample_indices), vocab_size]``. Called by the engine once per
        step in every engine process (all TP ranks run it; every rank returns the full-vocabulary logits)."""

    @abstractmethod
    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Copy checkpoint tensors (Hugging Face names) into the parameters, each through its
        ``weight_loader`` so tensor-parallel shards are cut here. Called once after construction (with random
        tensors for ``--load-format dummy``). :func:`minisgl_core.checkpoint.load_by_name` does the common mapping."""

    def checkpoint_shapes(self) -> list[tuple[str, tuple[int, ...]]] | None:
        """The checkpoint tensors :meth:`load_weights` reads: Hugging Face names and full (unsharded) shapes.
        Called once per engine process for ``--load-format dummy``, after construction. ``None`` (the
        default): the core learns them from transformers' model built on the meta device, which costs the
        import of transformers' modeling code (1.3-1.5 s of ``LLM()`` for Qwen3-0.6B on a 2-core CPU)."""
        return None
