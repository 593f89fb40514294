"""Checks before anything heavy: every name the settings select (backends, cache, scheduler, model), their
options and the backend/device pairing are checked - and their factories imported - before weights are
downloaded or loaded, so a typo fails in a second with the list of what exists."""

from __future__ import annotations

import torch

from minisgl_core.config import EngineConfig
from minisgl_core.contracts.model import TPInfo
from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.parallel import resolve_device
from minisgl_core.plugins import (
    ATTENTION,
    CACHE,
    GRAMMAR,
    MODEL,
    SCHEDULER,
    check_options,
    lookup,
    resolve_attention,
    resolve_grammar,
)


def preflight(config: EngineConfig, model_config: ModelConfig) -> None:
    """Raise ``ValueError`` naming the first selection that cannot work (unknown or conflicting name, a
    factory that cannot be imported, an undeclared option, a backend that does not run on the device)."""
    for kind, name, options in (
        (CACHE, config.cache, config.cache_options),
        (SCHEDULER, config.scheduler, config.scheduler_options),
        (MODEL, model_config.architecture, {}),
    ):
        entry = lookup(kind, name)
        check_options(entry, options)
        entry.load()
    grammar = resolve_grammar(config.grammar_backend)
    if grammar is not None:
        entry = lookup(GRAMMAR, grammar)
        check_options(entry, config.grammar_options)
        entry.load()
    elif config.grammar_options:
        raise ValueError("grammar options were given, but no grammar backend is selected")
    device = resolve_device(config.device, TPInfo(0, config.tp))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was asked for, but CUDA is not available here")
    for name in dict.fromkeys(config.attention_names):
        entry = lookup(ATTENTION, resolve_attention(name, device, model_config, quiet=True))
        check_options(entry, config.attention_options)
        entry.load()
    if config.max_model_len and config.max_model_len > model_config.max_position_embeddings:
        raise ValueError(
            f"max_model_len {config.max_model_len} exceeds the model's context "
            f"({model_config.max_position_embeddings} positions)"
        )
