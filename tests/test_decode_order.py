"""Decode batches go longest KV first, and the order of rows does not change what is generated."""

from __future__ import annotations

from minisgl_core import LLM, SamplingParams
from minisgl_core.engine.batch import Phase
from minisgl_core.scheduling import scheduler as scheduler_module

PROMPTS = [[5] * 3, [6] * 11, [7] * 2, [8] * 7, [9] * 5]


def _run(tiny_qwen3, plans: list) -> list[list[int]]:  # noqa: ANN001
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch")
    run = llm.runtime.engine.run

    def recording_run(plan):  # noqa: ANN001, ANN202
        plans.append(plan)
        return run(plan)

    llm.runtime.engine.run = recording_run  # type: ignore[method-assign]
    params = [SamplingParams(temperature=0.0, max_tokens=6 + i, ignore_eos=True) for i in range(len(PROMPTS))]
    return [out.token_ids for out in llm.generate(PROMPTS, params, use_tqdm=False)]


def test_decode_rows_are_longest_first_and_order_does_not_change_outputs(tiny_qwen3, monkeypatch) -> None:  # noqa: ANN001
    plans: list = []
    sorted_outputs = _run(tiny_qwen3, plans)
    decodes = [p for p in plans if p.phase is Phase.DECODE]
    assert decodes and any(len(set(p.kv_lens)) > 1 for p in decodes)
    for plan in decodes:
        assert plan.kv_lens == sorted(plan.kv_lens, reverse=True)
    monkeypatch.setattr(scheduler_module, "decode_order", lambda reqs: reqs)  # admission order instead
    arrival_plans: list = []
    assert _run(tiny_qwen3, arrival_plans) == sorted_outputs
    assert any(p.kv_lens != sorted(p.kv_lens, reverse=True) for p in arrival_plans if p.phase is Phase.DECODE)
