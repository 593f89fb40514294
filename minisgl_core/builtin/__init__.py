"""The core's own plugin: it registers the built-in implementations through the same hooks as any
third-party plugin. Factories are ``"module:attr"`` strings, imported only when selected."""

from __future__ import annotations

from minisgl_core.hookspecs import hookimpl


@hookimpl
def minisgl_register_attention_backends(register) -> None:
    register(
        "torch",
        "minisgl_core.attention.torch_backend:create",
        devices=("cpu", "cuda"),
        description="pure PyTorch paged attention; the reference implementation",
    )


@hookimpl
def minisgl_register_cache_policies(register) -> None:
    register(
        "radix",
        "minisgl_core.cache.radix:create",
        description="prefix sharing with a radix tree, LRU eviction",
    )
    register("naive", "minisgl_core.cache.naive:create", description="no prefix sharing")


@hookimpl
def minisgl_register_schedulers(register) -> None:
    register(
        "fcfs",
        "minisgl_core.scheduling.policy:create_fcfs",
        description="first come, first served; prefill first, chunked prefill, retraction under memory pressure",
    )
