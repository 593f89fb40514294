"""The GPU fast path end to end (marker ``gpu``): every installed GPU attention backend against the ``torch``
reference, and CUDA graphs / overlap scheduling never changing greedy output."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.plugins.select import backends_for_device

pytestmark = pytest.mark.gpu

NEW_TOKENS = 24
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)


def _kernels_installed(name: str) -> bool:
    if name == "flashinfer":
        return importlib.util.find_spec("flashinfer") is not None
    if name == "flash-attn":
        from minisgl_flash_attn.plugin import installed_interface

        return installed_interface() is not None
    return True


def gpu_backends() -> list[str]:
    """Registered GPU backends whose kernel library is installed here."""
    if not torch.cuda.is_available():
        return []
    return [b for b in backends_for_device(torch.device("cuda")) if b != "torch" and _kernels_installed(b)]


def prompts(n: int = 8, shared: int = 0, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    prefix = [rng.randrange(256) for _ in range(shared)]
    return [prefix + [rng.randrange(256) for _ in range(rng.randint(1, 90))] for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_gpu_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """A tiny Qwen3 with the real models' head size (GPU kernels are built for head_dim 64/128/256)."""
    from minisgl_core.testing.tiny_models import save_tiny_model

    path = tmp_path_factory.mktemp("tiny-gpu-qwen3")
    save_tiny_model(path, "qwen3", head_dim=128, num_attention_heads=4, num_key_value_heads=2)
    return path


def _run_counting_pieces(path, prompt_sets: list[list[list[int]]], **kwargs) -> tuple[list[list[int]], int]:  # noqa: ANN001
    """Greedy tokens of each prompt set in turn on one engine, and the steps its piecewise graphs ran."""
    llm = LLM(str(path), device="cuda", dtype="bfloat16", **kwargs)
    tokens = [o.token_ids for ps in prompt_sets for o in llm.generate(ps, GREEDY, use_tqdm=False)]
    llm.scheduler.check_memory()
    pieces = llm.runtime.engine.piecewise
    return tokens, pieces.replays if pieces is not None else 0


def generate(path, **kwargs) -> list[list[int]]:  # noqa: ANN001
    """Greedy tokens of a batch, then of a batch with prefix-cache hits."""
    return _run_counting_pieces(path, [prompts(), prompts(shared=48, seed=1)], **kwargs)[0]


def test_mixed_backends_prefill_decode(tiny_gpu_model) -> None:
    """One backend prefills, another decodes over the same pages (kernel agreement with the torch
    reference is checked step by step by each plugin's conformance suite)."""
    backends = gpu_backends()
    if len(backends) < 2:
        pytest.skip("needs two GPU attention backends")
    mixed = generate(tiny_gpu_model, attention=f"{backends[0]},{backends[1]}")
    assert all(len(tokens) == NEW_TOKENS for tokens in mixed)


@pytest.mark.parametrize("page_size", [1, 16])
def test_cuda_graphs_and_overlap_do_not_change_greedy_output(tiny_gpu_model, page_size: int) -> None:
    backends = gpu_backends()
    if not backends:
        pytest.skip("no GPU attention backend installed")
    for backend in backends:
        base = generate(tiny_gpu_model, attention=backend, page_size=page_size)
        no_graphs = generate(tiny_gpu_model, attention=backend, page_size=page_size, cuda_graph_max_bs=0)
        no_overlap = generate(tiny_gpu_model, attention=backend, page_size=page_size, disable_overlap=True)
        assert base == no_graphs, f"{backend}: CUDA graphs changed greedy output"
        assert base == no_overlap, f"{backend}: overlap scheduling changed greedy output"


def test_graphs_are_used_and_auto_picks_a_gpu_backend(tiny_gpu_model) -> None:
    llm = LLM(str(tiny_gpu_model), device="cuda", dtype="bfloat16")
    backends = gpu_backends()
    if backends:
        assert type(llm.runtime.engine.decode_attn).__module__.split(".")[0] != "minisgl_core"
        assert llm.runtime.engine.graph_runner is not None
    out = llm.generate(prompts(), GREEDY, use_tqdm=False)
    assert all(len(o.token_ids) == NEW_TOKENS for o in out)


def test_sampling_on_gpu_is_seeded_and_batched(tiny_gpu_model) -> None:
    llm = LLM(str(tiny_gpu_model), device="cuda", dtype="bfloat16")
    params = SamplingParams(temperature=0.8, top_p=0.9, top_k=50, min_p=0.01, seed=7, max_tokens=16, ignore_eos=True)
    alone = llm.generate([[1, 2, 3]], params, use_tqdm=False)[0].token_ids
    crowd = llm.generate([[1, 2, 3]] + prompts(), [params] + [SamplingParams(temperature=1.0)] * 8, use_tqdm=False)
    assert crowd[0].token_ids == alone


@pytest.mark.parametrize("page_size", [1, 16])
def test_piecewise_graphs_do_not_change_greedy_output(tiny_gpu_model, page_size: int) -> None:
    """Prefill and mixed steps replayed from piecewise graphs (padded to their token bucket, attention run
    eagerly between pieces) give the tokens of eager steps: chunked prompts, prefix-cache hits, decodes riding
    along in mixed steps, and steps too large for the graphs falling back to eager."""
    prompt_sets = [prompts(), prompts(shared=48, seed=1), prompts(n=12, shared=100, seed=2)]
    for backend in [*gpu_backends(), "torch"]:
        flags = dict(attention=backend, page_size=page_size, max_prefill_tokens=96, max_running_requests=8)
        eager, none = _run_counting_pieces(tiny_gpu_model, prompt_sets, piecewise_cuda_graph_max_tokens=0, **flags)
        graphs, replays = _run_counting_pieces(
            tiny_gpu_model, prompt_sets, piecewise_cuda_graph_max_tokens=2048, **flags
        )
        small, some = _run_counting_pieces(tiny_gpu_model, prompt_sets, piecewise_cuda_graph_max_tokens=40, **flags)
        assert none == 0 and replays > 0 and 0 < some < replays, (backend, none, replays, some)
        assert graphs == eager, f"{backend}: piecewise graphs changed greedy output"
        assert small == eager, f"{backend}: piecewise graphs for small steps only changed greedy output"
