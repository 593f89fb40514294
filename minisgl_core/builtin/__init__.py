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
