"""Piecewise graphs' data path on the CPU: a prefill or mixed step padded to its token bucket, its tokens in
the runner's fixed buffers, attention at each cut on the real tokens only, padding's KV in the reserved page
and only the real sampled rows kept. Before capture the runner makes exactly this pass eagerly (the graphs
replay the same buffers; they run on the GPU in tests/test_gpu_engine.py), so greedy output must stay
transformers'."""

from __future__ import annotations

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.engine.piecewise_graph import PiecewiseGraphRunner

GREEDY = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
PROMPTS = [[(5 * i + j) % 250 for j in range(n)] for i, n in enumerate((3, 40, 5, 70, 12, 33))]
SHARED = [list(range(30, 60)) + [(3 * i + j) % 200 for j in range(n)] for i, n in enumerate((2, 9, 17, 4))]


@pytest.mark.parametrize(("page_size", "max_tokens"), [(1, 20), (4, 20), (4, 12)])
def test_padded_steps_match_transformers(tiny_qwen3, page_size: int, max_tokens: int) -> None:
    llm = LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", page_size=page_size, max_prefill_tokens=16,
        max_running_requests=4,
    )  # fmt: skip
    engine = llm.runtime.engine
    runner = PiecewiseGraphRunner(
        engine.model, engine.kv_pool, engine.page_table.device_table, page_size, max_tokens, 4, engine.device
    )
    engine.piecewise = runner
    outs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    outs += llm.generate(SHARED, GREEDY, use_tqdm=False)  # prefix-cache hits: attention over cached pages
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, 8) for p in PROMPTS + SHARED]
    stats = llm.scheduler.step_stats.snapshot()
    prefill_steps = stats["prefill"][0] + stats["mixed"][0]
    assert stats["mixed"][0] > 0, stats
    if max_tokens >= 20:  # every prefill and mixed step fits (16 prompt tokens + 4 decodes)
        assert runner.replays == prefill_steps, (runner.replays, stats)
    else:  # larger steps ran eagerly beside it
        assert 0 < runner.replays < prefill_steps, (runner.replays, stats)
    llm.scheduler.check_memory()


def test_steps_that_do_not_fit_are_refused() -> None:
    runner = PiecewiseGraphRunner(
        lambda batch: batch.input_ids,
        None,
        None,
        1,
        100,
        4,
        torch.device("cpu"),  # type: ignore[arg-type]
    )
    assert runner.sizes == [16, 32, 64, 96, 100]
    assert runner.can_run(100, 4) and runner.can_run(3, 3)
    assert not runner.can_run(101, 1)  # over the largest bucket
    assert not runner.can_run(50, 5)  # more sampled rows than the 4 requests a step can hold
