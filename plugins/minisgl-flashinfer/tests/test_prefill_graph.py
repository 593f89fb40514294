"""The prefill CUDA graph with FlashInfer (GPU only): a prefill batch planned as the captured launch (padded
with empty requests) attends exactly like FlashInfer's own eager plan, and the engine's greedy output is the
same with the graph as without it, with the graph serving the full chunks."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from minisgl_core.engine.batch import Phase
from minisgl_core.testing.paged_scene import Extend, PagedScene

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        importlib.util.find_spec("flashinfer") is None or not torch.cuda.is_available(),
        reason="needs a CUDA GPU and FlashInfer",
    ),
]

TOKENS = 96
"""The captured token count (every composition below has exactly this many query tokens)."""
COMPOSITIONS = [  # (cached prefix, new tokens) per request
    [(0, 96)],
    [(0, 40), (50, 30), (7, 26)],
    [(0, 1), (0, 2), (300 - 90, 90), (16, 3)],
    [(0, 12)] * 8,
]


@pytest.mark.parametrize("page_size", [1, 16])
@torch.inference_mode()  # like the engine: the graph buffers are inference tensors
def test_padded_graph_plan_attends_like_the_eager_plan(page_size: int) -> None:
    from minisgl_flashinfer.backend import FlashInferAttention

    scene = PagedScene(
        num_heads=16, num_kv_heads=8, head_dim=128, page_size=page_size, max_requests=10, max_model_len=320,
        dtype=torch.bfloat16, device="cuda", seed=page_size,
    )  # fmt: skip
    eager, graph = FlashInferAttention(scene.context()), FlashInferAttention(scene.context())
    graph.init_prefill_graph(8)
    for i, composition in enumerate(COMPOSITIONS):
        reqs = [scene.request(prefix + new) for prefix, new in composition]
        batch = scene.batch(Phase.PREFILL, [Extend(r, p, p + n) for r, (p, n) in zip(reqs, composition)])
        assert batch.num_tokens == TOKENS
        batch.padded_batch_size = 8
        if i == 0:
            graph.prepare_prefill_capture(batch)
        else:
            assert graph.prepare_prefill_replay(batch), f"composition {i} did not fit the captured plan"
        eager.prepare(batch)
        wrapper = graph.graph_prefill.wrapper
        assert graph.active is wrapper
        q, _, _ = scene.qkv(TOKENS)
        for layer in range(scene.num_layers):
            paged = scene.pool.paged(layer)
            want, got = eager.active.run(q, paged), wrapper.run(q, paged)
            # the same kernels over the same tiles (FlashInfer's Hopper path matches bit for bit; the bound
            # allows a split-KV path elsewhere), while a wrong plan attends over other keys entirely
            torch.testing.assert_close(got, want, rtol=1.6e-2, atol=2e-3, msg=f"composition {i}, layer {layer}")
        for r in reqs:
            scene.release(r)


def test_engine_replays_full_prefill_chunks_with_unchanged_greedy_output(tmp_path) -> None:  # noqa: ANN001
    import random

    from minisgl_core import LLM, SamplingParams
    from minisgl_core.testing.tiny_models import save_tiny_model

    save_tiny_model(tmp_path, "qwen3", head_dim=128, num_attention_heads=4, num_key_value_heads=2)
    rng = random.Random(0)
    prefix = [rng.randrange(256) for _ in range(40)]
    prompts = [[rng.randrange(256) for _ in range(rng.randint(20, 150))] for _ in range(6)]
    prompts += [prefix + [rng.randrange(256) for _ in range(rng.randint(5, 60))] for _ in range(6)]
    greedy = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)

    def generate(**kwargs: object) -> tuple[list[list[int]], object]:
        llm = LLM(
            str(tmp_path), device="cuda", dtype="bfloat16", attention="flashinfer", page_size=16,
            max_prefill_tokens=64, num_kv_tokens=8192, **kwargs,
        )  # fmt: skip
        tokens = [o.token_ids for o in llm.generate(prompts, greedy, use_tqdm=False)]
        tokens += [o.token_ids for o in llm.generate(prompts[6:], greedy, use_tqdm=False)]  # prefix-cache hits
        llm.scheduler.check_memory()
        return tokens, llm.runtime.engine.prefill_graph

    with_graph, runner = generate(prefill_graph=True)
    without_graph, none = generate()  # the default: no prefill graph
    assert none is None and runner is not None
    assert runner.replays >= 5 and runner.fallbacks == 0, (runner.replays, runner.fallbacks)
    assert with_graph == without_graph
