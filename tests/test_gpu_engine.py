"""The GPU fast path end to end (marker ``gpu``): every installed GPU attention backend against the ``torch``
reference, and CUDA graphs / overlap scheduling never changing greedy output."""

from __future__ import annotations

import random

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.attention.select import backends_for_device

pytestmark = pytest.mark.gpu

NEW_TOKENS = 24
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)


def gpu_backends() -> list[str]:
    if not torch.cuda.is_available():
        return []
    return [b for b in backends_for_device(torch.device("cuda")) if b != "torch"]


def prompts(n: int = 8, shared: int = 0, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    prefix = [rng.randrange(256) for _ in range(shared)]
    return [prefix + [rng.randrange(256) for _ in range(rng.randint(1, 90))] for _ in range(n)]


def generate(path, **kwargs) -> list[list[int]]:  # noqa: ANN001
    llm = LLM(str(path), device="cuda", dtype="bfloat16", **kwargs)
    outs = llm.generate(prompts(), GREEDY, use_tqdm=False)
    outs += llm.generate(prompts(shared=48, seed=1), GREEDY, use_tqdm=False)  # prefix-cache hits
    llm.scheduler.check_memory()
    return [o.token_ids for o in outs]


@pytest.fixture(scope="module")
def reference(tiny_qwen3) -> dict[int, list[list[int]]]:
    """Greedy tokens of the torch backend on the GPU (bf16), per page size."""
    return {ps: generate(tiny_qwen3.path, attention="torch", page_size=ps) for ps in (1, 16)}


def agreement(a: list[list[int]], b: list[list[int]]) -> float:
    return sum(x == y for x, y in zip(a, b)) / len(a)


@pytest.mark.parametrize("page_size", [1, 16])
@pytest.mark.parametrize("chunk", [8192, 16])
def test_backend_matches_torch_reference(tiny_qwen3, reference, page_size: int, chunk: int) -> None:
    backends = gpu_backends()
    if not backends:
        pytest.skip("no GPU attention backend installed")
    for backend in backends:
        out = generate(tiny_qwen3.path, attention=backend, page_size=page_size, max_prefill_tokens=chunk)
        # bf16 kernels round differently; the tiny model's decisive logits keep greedy paths equal
        assert agreement(out, reference[page_size]) >= 0.9, backend


def test_mixed_backends_prefill_decode(tiny_qwen3, reference) -> None:
    backends = gpu_backends()
    if len(backends) < 2:
        pytest.skip("needs two GPU attention backends")
    out = generate(tiny_qwen3.path, attention=f"{backends[0]},{backends[1]}")
    assert agreement(out, reference[1]) >= 0.9


@pytest.mark.parametrize("page_size", [1, 16])
def test_cuda_graphs_and_overlap_do_not_change_greedy_output(tiny_qwen3, page_size: int) -> None:
    backends = gpu_backends()
    if not backends:
        pytest.skip("no GPU attention backend installed")
    for backend in backends:
        base = generate(tiny_qwen3.path, attention=backend, page_size=page_size)
        no_graphs = generate(tiny_qwen3.path, attention=backend, page_size=page_size, cuda_graph_max_bs=0)
        no_overlap = generate(tiny_qwen3.path, attention=backend, page_size=page_size, disable_overlap=True)
        assert base == no_graphs, f"{backend}: CUDA graphs changed greedy output"
        assert base == no_overlap, f"{backend}: overlap scheduling changed greedy output"


def test_graphs_are_used_and_auto_picks_a_gpu_backend(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cuda", dtype="bfloat16")
    backends = gpu_backends()
    if backends:
        assert type(llm.runtime.engine.decode_attn).__module__.split(".")[0] != "minisgl_core"
        assert llm.runtime.engine.graph_runner is not None
    out = llm.generate(prompts(), GREEDY, use_tqdm=False)
    assert all(len(o.token_ids) == NEW_TOKENS for o in out)


def test_sampling_on_gpu_is_seeded_and_batched(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cuda", dtype="bfloat16")
    params = SamplingParams(temperature=0.8, top_p=0.9, top_k=50, min_p=0.01, seed=7, max_tokens=16, ignore_eos=True)
    alone = llm.generate([[1, 2, 3]], params, use_tqdm=False)[0].token_ids
    crowd = llm.generate([[1, 2, 3]] + prompts(), [params] + [SamplingParams(temperature=1.0)] * 8, use_tqdm=False)
    assert crowd[0].token_ids == alone
