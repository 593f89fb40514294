"""Mixed steps: a prefill step that also advances every running request by one token gives the same tokens
as separate prefill and decode steps (and as transformers), and really happens when prompts and decodes
overlap."""

from __future__ import annotations

import pytest

from minisgl_core import LLM, SamplingParams, hookimpl
from minisgl_core.contracts import SchedulerView, SchedulingPolicy
from minisgl_core.plugins import register_plugin, unregister_plugin

GREEDY = SamplingParams(temperature=0.0, max_tokens=10, ignore_eos=True)
PROMPTS = [[(7 * i + j) % 250 for j in range(n)] for i, n in enumerate((3, 40, 5, 70, 12, 33))]


@pytest.mark.parametrize("overlap", [True, False])
def test_mixed_steps_match_transformers(tiny_qwen3, overlap: bool) -> None:
    llm = LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16, max_running_requests=4,
        disable_overlap=not overlap,
    )  # fmt: skip
    outs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, 10) for p in PROMPTS]
    stats = llm.scheduler.step_stats.snapshot()
    assert stats["mixed"][0] > 0, stats  # chunks of later prompts carried the earlier ones' decodes
    llm.scheduler.check_memory()


def test_without_mixed_steps_prefill_and_decode_alternate(tiny_qwen3) -> None:
    llm = LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16, max_running_requests=4,
        mixed_chunk=False,
    )  # fmt: skip
    outs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, 10) for p in PROMPTS]
    stats = llm.scheduler.step_stats.snapshot()
    assert stats["mixed"][0] == 0 and stats["prefill"][0] > 0 and stats["decode"][0] > 0
    steps, tokens, seconds = stats["decode"]
    assert tokens >= steps and seconds > 0


def test_mixed_steps_with_sampling_penalties_and_seeds(tiny_qwen3) -> None:
    """Requests that sample (seeded) or carry penalties give the same output whether or not steps are mixed."""
    params = [
        SamplingParams(temperature=0.8, seed=3, max_tokens=8, ignore_eos=True),
        SamplingParams(temperature=0.0, repetition_penalty=1.3, presence_penalty=0.5, max_tokens=8, ignore_eos=True),
    ] * 3
    results = []
    for mixed in (True, False):
        llm = LLM(
            str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16, max_running_requests=4,
            mixed_chunk=mixed,
        )  # fmt: skip
        results.append([o.token_ids for o in llm.generate(PROMPTS, params, use_tqdm=False)])
    assert results[0] == results[1]


class NeverMix(SchedulingPolicy):
    def mix_decodes(self, prefill_tokens: int, view: SchedulerView) -> bool:
        return False


class AlwaysMix(SchedulingPolicy):
    def mix_decodes(self, prefill_tokens: int, view: SchedulerView) -> bool:
        return True


class MixPlugin:
    @hookimpl
    def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
        register("test-never-mix", NeverMix)
        register("test-always-mix", AlwaysMix)


def test_the_policy_decides_which_prefill_steps_mix(tiny_qwen3) -> None:
    name = register_plugin(MixPlugin(), name="mix-test")
    try:
        mixed_steps = {}
        for scheduler in ("test-never-mix", "fcfs", "test-always-mix"):
            llm = LLM(
                str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16,
                max_running_requests=4, scheduler=scheduler,
            )  # fmt: skip
            outs = llm.generate(PROMPTS, GREEDY, use_tqdm=False)
            assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, 10) for p in PROMPTS]
            mixed_steps[scheduler] = llm.scheduler.step_stats.snapshot()["mixed"][0]
    finally:
        unregister_plugin(name)
    # the default mixes only steps with at most half a budget of prompt tokens: fewer than always
    assert mixed_steps["test-never-mix"] == 0 < mixed_steps["fcfs"] < mixed_steps["test-always-mix"], mixed_steps
