"""Shared fixtures: tiny random Qwen3 and Llama checkpoints on disk, and transformers reference outputs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _demo_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the demo model out of the user's home directory during tests."""
    os.environ.setdefault("MINISGL_CACHE_DIR", str(tmp_path_factory.mktemp("minisgl-cache")))


class TinyModel:
    """A tiny random checkpoint on disk plus its transformers twin for reference outputs."""

    def __init__(self, path: Path, hf_model: torch.nn.Module, arch: str) -> None:
        self.path = path
        self.hf_model = hf_model
        self.arch = arch
        self._cache: dict[tuple[tuple[int, ...], int], list[int]] = {}

    def greedy(self, prompt_ids: list[int], max_new_tokens: int) -> list[int]:
        """transformers' greedy continuation of one prompt (no padding), memoised."""
        key = (tuple(prompt_ids), max_new_tokens)
        if key not in self._cache:
            ids = torch.tensor([prompt_ids])
            with torch.no_grad():
                out = self.hf_model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=None,
                    pad_token_id=0,
                )
            self._cache[key] = out[0, len(prompt_ids) :].tolist()
        return self._cache[key]


def _make(tmp_path_factory: pytest.TempPathFactory, arch: str) -> TinyModel:
    from minisgl_core.testing.tiny_models import save_tiny_model

    path = tmp_path_factory.mktemp(f"tiny-{arch}")
    hf_model = save_tiny_model(path, arch)
    return TinyModel(path, hf_model, arch)


@pytest.fixture(scope="session")
def tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return _make(tmp_path_factory, "qwen3")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    return _make(tmp_path_factory, "llama")


@pytest.fixture(scope="session", params=["qwen3", "llama"])
def tiny_model(request: pytest.FixtureRequest) -> TinyModel:
    return request.getfixturevalue(f"tiny_{request.param}")
