"""The scheduler's view for policies: its step counter, and prefix matches that leave the cache's LRU alone."""

from __future__ import annotations

import pytest

from minisgl_core import LLM, SamplingParams, hookimpl
from minisgl_core.contracts import SchedulerView, SchedulingPolicy
from minisgl_core.plugins import register_plugin, unregister_plugin

GREEDY = SamplingParams(temperature=0.0, max_tokens=4, ignore_eos=True)


class StepRecorder(SchedulingPolicy):
    """First come, first served; remembers ``view.num_steps`` whenever it is asked to admit."""

    def __init__(self, ctx) -> None:  # noqa: ANN001
        super().__init__(ctx)
        self.seen: list[int] = []

    def should_prefill(self, view: SchedulerView) -> bool:
        self.seen.append(view.num_steps)
        return super().should_prefill(view)


class ViewPlugin:
    @hookimpl
    def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
        register("test-step-recorder", StepRecorder)


@pytest.fixture(scope="module", autouse=True)
def view_plugin():
    name = register_plugin(ViewPlugin(), name="view-test")
    yield
    unregister_plugin(name)


def test_num_steps_counts_planned_steps(tiny_qwen3) -> None:
    llm = LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", scheduler="test-step-recorder", disable_overlap=True
    )
    assert llm.scheduler.num_steps == 0
    llm.generate([1, 2, 3], GREEDY, use_tqdm=False)
    assert llm.scheduler.num_steps == 4  # one prefill (first token), three decodes
    llm.generate([4, 5], GREEDY, use_tqdm=False)
    assert llm.scheduler.num_steps == 8
    assert llm.scheduler.policy.seen == [0, 4]  # while planning, the index of the step being planned


def test_prefix_match_len_does_not_refresh_the_lru(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", cache="radix", max_model_len=64)
    old, new = [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]
    scheduler, cache = llm.scheduler, llm.scheduler.kv.cache
    llm.generate(old, GREEDY, use_tqdm=False)
    old_tokens = cache.cached_tokens  # the old prompt and its output
    llm.generate(new, GREEDY, use_tqdm=False)
    req = llm.runtime.make_request(old, GREEDY)
    assert scheduler.prefix_match_len(req) == len(old) - 1  # the last prompt token is always computed
    cache.evict(old_tokens)  # least recently used first: the old sequence, although a policy just looked at it
    assert scheduler.prefix_match_len(req) == 0
    assert cache.peek_prefix_len(new) == len(new)
