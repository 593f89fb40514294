"""Registers the ``flash-attn`` attention backend (alias ``fa``)."""

from __future__ import annotations

import importlib.util
from typing import Any

from minisgl_core import hookimpl

NAME = "flash-attn"


def installed_interface() -> str | None:
    """``"fa3"`` when FlashAttention-3 is installed, else ``"fa4"`` when FlashAttention-4 is, else None."""
    if importlib.util.find_spec("flash_attn_interface") is not None:
        return "fa3"
    try:
        if importlib.util.find_spec("flash_attn.cute") is not None:
            return "fa4"
    except ModuleNotFoundError:
        pass
    return None


@hookimpl
def minisgl_register_attention_backends(register: Any) -> None:
    register(
        NAME,
        "minisgl_flash_attn.backend:create",
        aliases=("fa",),
        devices=("cuda",),
        description="FlashAttention-4 (CuTe DSL, Hopper/Blackwell) or FlashAttention-3 over the paged KV cache",
    )


@hookimpl
def minisgl_choose_attention_backend(device: Any, model_config: Any, available: list[str]) -> str | None:
    # FlashInfer is the default when both are installed (faster decode here); answer only without it.
    if device.type == "cuda" and NAME in available and "flashinfer" not in available and installed_interface():
        return NAME
    return None
