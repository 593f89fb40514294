"""Registers the ``flashinfer`` attention backend and answers ``--attention auto`` on CUDA devices."""

from __future__ import annotations

import importlib.util
from typing import Any

from minisgl_core import hookimpl

NAME = "flashinfer"
SUPPORTED_HEAD_DIMS = (64, 128, 256)  # what FlashInfer 0.5's Hopper prefill kernels are built for


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
    """FlashInfer on CUDA when installed and built for the model's head size (else ``auto`` goes on)."""
    supported = device.type == "cuda" and NAME in available and model_config.head_dim in SUPPORTED_HEAD_DIMS
    return NAME if supported and flashinfer_installed() else None
