"""The core's own plugin: it registers the built-in implementations through the same hooks, and the same
plugin manager path, as any third-party plugin. Factories are ``"module:attr"`` strings, imported only when
selected. None of them takes options (``options=()``), so a stray option fails before the model loads."""

from __future__ import annotations

from typing import Any

from minisgl_core.contracts.hookspecs import hookimpl


@hookimpl
def minisgl_register_attention_backends(register: Any) -> None:
    register(
        "torch",
        "minisgl_core.builtin.torch_attention:create",
        devices=("cpu", "cuda"),
        description="pure PyTorch paged attention; the reference implementation",
        options=(),
    )


@hookimpl
def minisgl_register_cache_policies(register: Any) -> None:
    register(
        "radix",
        "minisgl_core.builtin.radix_cache:create",
        description="prefix sharing with a radix tree, LRU eviction",
        options=(),
    )
    register("naive", "minisgl_core.builtin.naive_cache:create", description="no prefix sharing", options=())


@hookimpl
def minisgl_register_schedulers(register: Any) -> None:
    register(
        "fcfs",
        "minisgl_core.builtin.fcfs:create",
        description="first come, first served; prefill first, chunked prefill, retraction under memory pressure",
        options=(),
    )


@hookimpl
def minisgl_register_reasoning_parsers(register: Any) -> None:
    register(
        "qwen3",
        "minisgl_core.builtin.parsers.think:qwen3",
        description="<think>...</think> opened by the output (Qwen3); all content when it does not open",
    )
    register(
        "deepseek-r1",
        "minisgl_core.builtin.parsers.think:deepseek_r1",
        aliases=("qwq",),
        description="reasoning until </think>; the prompt opened the block (DeepSeek-R1, QwQ)",
    )


@hookimpl
def minisgl_register_tool_parsers(register: Any) -> None:
    register(
        "hermes",
        "minisgl_core.builtin.parsers.tool_formats:hermes",
        aliases=("qwen3", "qwen25"),
        description='<tool_call>{"name": ..., "arguments": {...}}</tool_call> (Qwen2.5, Qwen3, Hermes)',
    )
    register(
        "llama3",
        "minisgl_core.builtin.parsers.tool_formats:llama3",
        aliases=("llama3_json",),
        description='{"name": ..., "parameters": {...}} JSON calls, ";"-separated (Llama 3.1-3.3)',
    )
