"""The ``flash-attn`` backend against the ``torch`` reference (the core's attention conformance suite).

Needs a CUDA GPU with FlashAttention-4 (or -3); elsewhere only the registration is checked.
"""

from __future__ import annotations

import pytest
import torch
from minisgl_flash_attn.plugin import installed_interface

from minisgl_core.plugins import ATTENTION, lookup
from minisgl_core.testing import AttentionBackendSuite


def test_registered_with_alias() -> None:
    entry = lookup(ATTENTION, "fa")
    assert entry.name == "flash-attn" and entry.distribution == "minisgl-flash-attn"


@pytest.mark.skipif(installed_interface() is None, reason="FlashAttention 3/4 is not installed (GPU machines only)")
class TestFlashAttention(AttentionBackendSuite):
    backend = "flash-attn"
    device = "cuda"
    dtype = torch.bfloat16
    head_configs = ((16, 8, 128), (8, 2, 128))  # the head size of the Qwen3 / Llama 3 models served
    check_generation = False  # tiny models have head_dim 16; tests/test_gpu_engine.py generates with 128
