"""The contracts: what the core hands to plugins and what it expects back. Every plugin-facing type lives
here, at the bottom of the house; nothing here imports another part of ``minisgl_core``.

- hook specs and the ``hookimpl`` marker (:mod:`.hookspecs`);
- the step a model and an attention backend receive (:mod:`.batch`);
- the attention-backend, cache-policy, scheduling-policy, grammar-backend and model contracts
  (:mod:`.attention`, :mod:`.cache`, :mod:`.scheduler`, :mod:`.grammar`, :mod:`.model`), with the contexts
  their factories receive;
- a request, its sampling settings and the model facts (:mod:`.request`, :mod:`.sampling`,
  :mod:`.model_config`), plugin options (:mod:`.options`), and the reasoning and tool-call parser
  contracts (:mod:`.parsers`).

Names are imported on first use, so ``from minisgl_core import hookimpl`` does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "hookspecs": ("hookimpl", "hookspec"),
    "batch": ("AttentionLayerSpec", "ForwardBatch", "KVStore", "Phase"),
    "attention": ("HOST_RING", "AttentionBackend", "AttentionContext"),
    "cache": ("CacheContext", "CachePolicy", "PrefixMatch"),
    "grammar": ("Constraint", "GrammarBackend", "GrammarContext", "GrammarMatcher", "bitmask_words"),
    "scheduler": ("SchedulerContext", "SchedulerView", "SchedulingPolicy"),
    "model": ("CausalLM", "ModelContext", "TPInfo"),
    "model_config": ("ModelConfig",),
    "request": ("FinishReason", "Req", "TokenLogprob"),
    "sampling": ("SamplingParams",),
    "options": ("option_flag", "parse_option", "reject_options"),
    "parsers": (
        "ReasoningContext",
        "ReasoningDelta",
        "ReasoningParser",
        "ToolCallDelta",
        "ToolDelta",
        "ToolParser",
        "ToolParserContext",
    ),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
