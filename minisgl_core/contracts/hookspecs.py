"""Hook specifications: every extension point of minisgl, one documented empty function each.

A plugin is a module (or object) with functions decorated by ``minisgl_core.hookimpl`` whose names match
the specs below. It is found through the entry-point group ``minisgl`` and loaded once per process by
:mod:`minisgl_core.plugins` - in the API server, the tokenizer and detokenizer workers and every engine
process alike. Every hook, the register hooks included, is called through the process's pluggy manager, with
keyword arguments, so an implementation may accept fewer arguments than its spec and
``MINISGL_TRACE_HOOKS=1`` traces each call.

The ``register`` hooks receive a ``register(name, factory, **metadata)`` callback. ``factory`` is either a
callable or a ``"module:attribute"`` string; it is imported and called only when its name is selected, so
listing plugins never imports CUDA libraries. Registration is by name: the name a user passes on the command
line or to ``LLM(...)`` picks the implementation, never the order in which plugins were loaded. Metadata every
kind accepts: ``description=""`` (shown by ``minisgl plugins``) and ``options=None``: the option keys the
implementation accepts (a collection of strings). When given, an unknown ``--...-option`` key fails before any
weight is loaded; when ``None`` the factory alone checks ``ctx.options``.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT_NAME = "minisgl"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def minisgl_register_attention_backends(register: Any) -> None:
    """Register attention backends.

    Called by the plugin manager once per process, when plugins load (see ``minisgl_core.plugins``).

    Call ``register(name, factory, *, aliases=(), devices=("cuda",), description="", options=None)`` once per
    backend. ``devices`` lists the device types (``"cpu"``, ``"cuda"``) the backend runs on. The factory is
    called in each engine process (one per tensor-parallel rank) when the backend is selected, as
    ``factory(ctx: minisgl_core.contracts.AttentionContext)``, and must return a
    :class:`minisgl_core.contracts.AttentionBackend`. Import kernel libraries inside the factory.

    Returns nothing.
    """


@hookspec
def minisgl_register_cache_policies(register: Any) -> None:
    """Register KV-cache policies (prefix reuse and eviction).

    Called by the plugin manager once per process, when plugins load.

    Call ``register(name, factory, *, description="", options=None)`` once per policy. The factory is called
    in the scheduling process (TP rank 0) when the policy is selected, as
    ``factory(ctx: minisgl_core.contracts.CacheContext)``, and must return a
    :class:`minisgl_core.contracts.CachePolicy`.

    Returns nothing.
    """


@hookspec
def minisgl_register_schedulers(register: Any) -> None:
    """Register scheduling policies.

    Called by the plugin manager once per process, when plugins load.

    Call ``register(name, factory, *, description="", options=None)`` once per policy. The factory is called
    in the scheduling process (TP rank 0) when the policy is selected, as
    ``factory(ctx: minisgl_core.contracts.SchedulerContext)``, and must return a
    :class:`minisgl_core.contracts.SchedulingPolicy`.

    Returns nothing.
    """


@hookspec
def minisgl_register_models(register: Any) -> None:
    """Register model architectures.

    Called by the plugin manager once per process, when plugins load.

    Call ``register(architecture, factory, *, description="")`` once per architecture, where
    ``architecture`` is a Hugging Face ``architectures`` name such as ``"Qwen3ForCausalLM"``. The factory is
    called in each engine process as ``factory(ctx: minisgl_core.contracts.ModelContext)`` and must return a
    :class:`minisgl_core.contracts.CausalLM` (a ``torch.nn.Module`` that also loads its own weights).

    Returns nothing.
    """


@hookspec
def minisgl_register_reasoning_parsers(register: Any) -> None:
    """Register reasoning parsers (``--reasoning-parser NAME``).

    Called by the plugin manager once per process, when plugins load.

    Call ``register(name, factory, *, aliases=(), description="")`` once per parser. The factory is called
    in the API server process, once per choice of every chat completion, as
    ``factory(ctx: minisgl_core.contracts.ReasoningContext)``, and must return a fresh
    :class:`minisgl_core.contracts.ReasoningParser`. It must be cheap: no model or file loading.

    Returns nothing.
    """


@hookspec
def minisgl_register_tool_parsers(register: Any) -> None:
    """Register tool-call parsers (``--tool-call-parser NAME``).

    Called by the plugin manager once per process, when plugins load.

    Call ``register(name, factory, *, aliases=(), description="")`` once per parser. The factory is called
    in the API server process, once per choice of every chat completion that has tools (and
    ``tool_choice`` other than ``"none"``), as ``factory(ctx: minisgl_core.contracts.ToolParserContext)``,
    and must return a fresh :class:`minisgl_core.contracts.ToolParser`.

    Returns nothing.
    """


@hookspec
def minisgl_register_grammar_backends(register: Any) -> None:
    """Register grammar backends (constrained decoding: JSON Schema, regex, EBNF, choices).

    Called by the plugin manager once per process, when plugins load.

    Call ``register(name, factory, *, description="", options=None)`` once per backend. The factory is called
    in the scheduling process (TP rank 0), on the core's grammar compile thread, the first time a request
    carries a constraint, as ``factory(ctx: minisgl_core.contracts.GrammarContext)``, and must return a
    :class:`minisgl_core.contracts.GrammarBackend`. Import the grammar library inside the factory.
    ``--grammar-backend auto`` picks ``xgrammar`` when it is registered, else the first registered name.

    Returns nothing.
    """


@hookspec(firstresult=True)
def minisgl_choose_attention_backend(device: Any, model_config: Any, available: list[str]) -> str | None:
    """Pick an attention backend for ``--attention auto``.

    Called when the engine's settings are checked (before the model loads) and in each engine process when
    the user asked for ``auto``, after plugins loaded, with the ``torch.device`` the engine runs on, the
    :class:`minisgl_core.contracts.ModelConfig`, and the names of the registered backends that support that
    device type.

    Return the name of a backend from ``available`` that suits the device and model, or ``None`` to let
    other plugins answer. The first non-``None`` answer wins; when nobody answers the engine uses ``torch``
    and logs why.
    """
