"""Tiny random models for tests: built once per process in a temporary folder, and transformers' greedy
output as the reference (the builders themselves live in :mod:`minisgl_core.checkpoint.tiny`)."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from minisgl_core.checkpoint.tiny import byte_tokenizer, save_random_model, save_tiny_model, tiny_config

__all__ = ["byte_tokenizer", "hf_greedy", "save_random_model", "save_tiny_model", "tiny_config", "tiny_model_dir"]

_TINY_DIRS: dict[str, Path] = {}


def tiny_model_dir(arch: str = "qwen3", **overrides: Any) -> Path:
    """A tiny random ``arch`` checkpoint (seed 0, config ``overrides`` applied) written once per process to a
    temporary folder that is removed at exit. Suites share it; never write into it."""
    key = json.dumps([arch, overrides], sort_keys=True)
    if key not in _TINY_DIRS:
        root = Path(tempfile.mkdtemp(prefix=f"minisgl-tiny-{arch}-"))
        atexit.register(shutil.rmtree, root, True)
        save_tiny_model(root, arch, **overrides)
        _TINY_DIRS[key] = root
    return _TINY_DIRS[key]


def hf_greedy(model: Any, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
    """transformers' greedy continuation of one prompt (no padding, no EOS): the token-for-token reference."""
    import torch

    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            min_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=None,
            pad_token_id=0,
        )
    return out[0, len(prompt_ids) :].tolist()
