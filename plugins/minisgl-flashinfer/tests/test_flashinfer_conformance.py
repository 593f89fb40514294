"""The ``flashinfer`` backend against the ``torch`` reference (the core's attention conformance suite).

Needs a CUDA GPU and FlashInfer; on other machines the plugin's registration is still checked and the
GPU scenarios are skipped with the reason.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from minisgl_core.plugins import ATTENTION, lookup
from minisgl_core.testing import AttentionBackendSuite

HAVE_FLASHINFER = importlib.util.find_spec("flashinfer") is not None


def test_registered_without_importing_flashinfer() -> None:
    entry = lookup(ATTENTION, "fi")
    assert entry.name == "flashinfer" and entry.distribution == "minisgl-flashinfer"
    assert entry.metadata["devices"] == ("cuda",)


def test_float32_and_odd_head_sizes_are_refused_with_a_way_out() -> None:
    """FlashInfer has no float32 kernels and builds its Hopper prefill for head sizes 64/128/256 only: the
    backend says so (and what to pass) before importing FlashInfer."""
    from types import SimpleNamespace

    from minisgl_flashinfer.backend import FlashInferAttention

    with pytest.raises(ValueError, match="float16 or bfloat16, not float32: pass --dtype bfloat16"):
        FlashInferAttention(SimpleNamespace(dtype=torch.float32, head_dim=128))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="head size of 64, 128, 256, not 16: use --attention torch"):
        FlashInferAttention(SimpleNamespace(dtype=torch.bfloat16, head_dim=16))  # type: ignore[arg-type]


def test_auto_skips_flashinfer_for_head_sizes_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from minisgl_flashinfer import plugin

    monkeypatch.setattr(plugin, "flashinfer_installed", lambda: True)
    cuda = torch.device("cuda")
    choose = plugin.minisgl_choose_attention_backend
    assert choose(cuda, SimpleNamespace(head_dim=128), ["torch", "flashinfer"]) == "flashinfer"
    assert choose(cuda, SimpleNamespace(head_dim=16), ["torch", "flashinfer"]) is None  # auto goes on to torch
    assert choose(torch.device("cpu"), SimpleNamespace(head_dim=128), ["torch"]) is None


@pytest.mark.skipif(not HAVE_FLASHINFER, reason="flashinfer is not installed (GPU machines only)")
class TestFlashInfer(AttentionBackendSuite):
    backend = "flashinfer"
    device = "cuda"
    dtype = torch.bfloat16
    head_configs = ((16, 8, 128), (8, 2, 128))  # the head size of the Qwen3 / Llama 3 models served
    check_generation = False  # tiny models have head_dim 16; tests/test_gpu_engine.py generates with 128
