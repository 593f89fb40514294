"""Testing minisgl and its plugins: conformance suites, tiny random models, and loading a plugin under test.

The suites are pytest base classes; a plugin's test subclasses one and names what it tests::

    from minisgl_core.testing import CachePolicySuite, use_plugin

    use_plugin("my_policy_plugin")          # loaded even before `pip install -e .`

    class TestMyPolicy(CachePolicySuite):
        policy = "my-policy"
        options = {"max_tokens": "4096"}    # as `--cache-option max_tokens=4096`

- :class:`AttentionBackendSuite`: an attention backend against the ``torch`` reference, step by step;
- :class:`CachePolicySuite`: a KV-cache policy: slot accounting, prefix hits, eviction, generation;
- :class:`SchedulerSuite`: a scheduling policy: method contracts, liveness, fairness bounds;
- :class:`ModelPluginSuite`: a model: greedy tokens equal to transformers on a tiny random config;
- :class:`ReasoningParserSuite`, :class:`ToolParserSuite`: output parsers on cases the plugin gives, split at
  every position, streamed and whole, with Unicode;
- :class:`GrammarBackendSuite`: a grammar backend: masks, walks ending in valid output, errors, rollback.

:func:`save_scripted_model` writes a checkpoint whose model emits given texts (the scripted model), for
testing parsers through a real server.

Every class attribute a subclass may set is documented on the suite (and in docs/plugins.md). The tiny-model
helpers: :func:`byte_tokenizer` (an offline byte-level tokenizer with a ChatML template),
:func:`tiny_config` / :func:`save_tiny_model` / :func:`save_random_model` (a random transformers model and
that tokenizer written to a folder; they return the transformers model), :func:`tiny_model_dir` (one such
folder per process, shared), and :func:`hf_greedy` (transformers' greedy continuation: the reference).

Names are imported lazily, so importing this package needs neither pytest nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "attention_suite": ("AttentionBackendSuite",),
    "cache_suite": ("CachePolicySuite",),
    "scheduler_suite": ("SchedulerSuite",),
    "model_suite": ("ModelPluginSuite",),
    "grammar_suite": ("GrammarBackendSuite",),
    "suite_base": ("ConformanceSuite",),
    "plugins": ("use_plugin",),
    "scripted": ("save_scripted_model",),
    "parser_suites": (
        "ReasoningCase", "ReasoningParserSuite", "ToolCase", "ToolParserSuite", "pieces_of", "run_reasoning",
        "run_tools",
    ),
    "tiny_models": (
        "byte_tokenizer", "hf_greedy", "save_random_model", "save_tiny_model", "tiny_config", "tiny_model_dir",
    ),
}  # fmt: skip
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
