"""Attention backends. Implementations register through ``minisgl_register_attention_backends``; the core
ships ``torch`` (pure PyTorch, the reference every other backend is checked against)."""

from minisgl_core.attention.base import AttentionBackend, AttentionContext
from minisgl_core.engine.batch import ForwardBatch, Phase

__all__ = ["AttentionBackend", "AttentionContext", "ForwardBatch", "Phase"]
