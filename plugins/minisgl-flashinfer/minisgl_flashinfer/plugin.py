"""Registers the ``flashinfer`` attention backend and answers ``--attention auto`` on CUDA devices."""

from __future__ import annotations

import importlib.util
from typing import Any

from minisgl_core import hookimpl

NAME = "flashinfer"


def flashinfer_installed() -> bool:
    return importlib.util.find_spec("flashinfer") is not None


@hookimpl
def minisgl_register_attention_backends(register: Any) -> None:
    register(
        NAME,
        "minisgl_flashinfer.backend:create",
        aliases=("fi",),
        devices=("cuda",),
        description="FlashInfer paged prefill + decode (tensor cores), CUDA graphs",
    )


@hookimpl
def minisgl_choose_attention_backend(device: Any, model_config: Any, available: list[str]) -> str | None:
    if device.type == "cuda" and NAME in available and flashinfer_installed():
        return NAME
    return None
