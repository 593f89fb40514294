"""Host-side parts of the prefill CUDA graph (the graph itself is tested on the GPU by the FlashInfer plugin):
the dummy batch it is captured with, and which steps it serves."""

from __future__ import annotations

import pytest
import torch

from minisgl_core.engine.batch import Phase
from minisgl_core.engine.plan import StepPlan
from minisgl_core.engine.prefill_graph import PrefillGraphRunner, dummy_prefill_plan
from minisgl_core.engine.sampler import SamplingBatch
from minisgl_core.sampling_params import SamplingParams


@pytest.mark.parametrize(("tokens", "max_model_len", "q_lens"), [
    (8192, 40960, [8192]),
    (100, 41, [40, 40, 20]),
    (80, 41, [40, 40]),
])  # fmt: skip
def test_dummy_plan_fills_the_token_count_on_the_dummy_row(tokens: int, max_model_len: int, q_lens: list[int]) -> None:
    plan = dummy_prefill_plan(tokens, max_model_len, dummy_row=7, max_requests=4)
    assert plan is not None and plan.phase is Phase.PREFILL
    assert plan.q_lens == q_lens and plan.kv_lens == q_lens  # no cached prefix, positions < max_model_len
    assert plan.rows == [7] * len(q_lens) and plan.num_tokens == tokens
    assert plan.input_ids is not None and plan.input_ids.numel() == tokens
    assert int(plan.out_slots.abs().sum()) == 0  # every key/value goes to the reserved page 0


def test_dummy_plan_gives_up_when_the_tokens_need_too_many_requests() -> None:
    assert dummy_prefill_plan(200, 41, dummy_row=0, max_requests=4) is None


def _plan(phase: Phase, q_lens: list[int]) -> StepPlan:
    n = len(q_lens)
    return StepPlan(
        phase=phase, rows=list(range(n)), q_lens=q_lens, kv_lens=list(q_lens),
        out_slots=torch.arange(sum(q_lens)), sample=list(range(n)),
        sampling=SamplingBatch.build([SamplingParams()] * n, list(range(n))),
    )  # fmt: skip


def test_the_graph_serves_prefill_steps_of_its_size_and_request_limit_only() -> None:
    runner = PrefillGraphRunner(lambda batch: batch.input_ids, None, 64, 4, torch.device("cpu"))  # type: ignore[arg-type]
    assert not runner.can_run(_plan(Phase.PREFILL, [64]))  # nothing captured yet
    runner.graph = object()  # type: ignore[assignment]  # as after capture()
    assert runner.can_run(_plan(Phase.PREFILL, [64]))
    assert runner.can_run(_plan(Phase.PREFILL, [10, 20, 30, 4]))
    assert not runner.can_run(_plan(Phase.PREFILL, [10, 20, 30, 3]))  # another size: eager
    assert not runner.can_run(_plan(Phase.PREFILL, [16] * 4 + [0]))  # more requests than captured
    assert not runner.can_run(_plan(Phase.DECODE, [1] * 64))


def test_engines_without_a_capturable_backend_or_room_for_the_dummy_chunk_get_no_graph(caplog) -> None:  # noqa: ANN001
    from minisgl_core import LLM
    from minisgl_core.engine.prefill_graph import build_prefill_graph

    llm = LLM("demo", device="cpu", attention="torch", max_prefill_tokens=4096, max_model_len=64, prefill_graph=True)
    engine = llm.runtime.engine
    assert engine.prefill_graph is None  # CPU: nothing is captured
    with caplog.at_level("INFO", logger="minisgl.engine"):
        assert build_prefill_graph(engine) is None
        engine.prefill_attn.supports_prefill_graph = True  # as if it could: 4096 tokens need 66 dummy requests
        assert build_prefill_graph(engine) is None
    assert "cannot be captured" in caplog.text and "do not fit 64 dummy requests" in caplog.text
