"""The ``lpm`` scheduler: its ordering, minisgl's scheduler conformance suite, and its effect on hits."""

from __future__ import annotations

import random

import pytest

from minisgl_core.contracts import Req, SamplingParams, SchedulerContext
from minisgl_core.testing import SchedulerSuite, tiny_model_dir, use_plugin

use_plugin("minisgl_lpm")  # a no-op once the distribution is installed

from minisgl_lpm.policy import LongestPrefixMatch  # noqa: E402 - after the plugin is loaded


class View:
    def __init__(self, waiting: list[Req], matches: dict[int, int]) -> None:
        self.waiting, self.running, self.available_tokens = waiting, [], 10_000
        self.matches = matches

    def prefix_match_len(self, req: Req) -> int:
        return self.matches.get(req.rid, 0)


def reqs(n: int) -> list[Req]:
    return [Req(i, [1, 2, 3], SamplingParams(), 16, frozenset(), arrival=i) for i in range(n)]


def policy() -> LongestPrefixMatch:
    return LongestPrefixMatch(SchedulerContext(8, 256, 1, 1024))


def test_longest_cached_prefix_first_ties_in_arrival_order() -> None:
    waiting = reqs(5)
    order = policy().admission_order(View(waiting[::-1], {1: 32, 3: 64, 4: 32}))
    assert [r.rid for r in order] == [3, 1, 4, 0, 2]


def test_long_queues_fall_back_to_arrival_order() -> None:
    p = policy()
    waiting = reqs(p.max_queue_len + 1)
    view = View(waiting[::-1], {r.rid: r.rid for r in waiting})
    assert [r.rid for r in p.admission_order(view)] == [r.rid for r in waiting]
    view.waiting = waiting[: p.max_queue_len][::-1]
    assert p.admission_order(view)[0].rid == p.max_queue_len - 1


def test_max_queue_len_option() -> None:
    p = LongestPrefixMatch(SchedulerContext(8, 256, 1, 1024, options={"max_queue_len": "2"}))
    assert p.max_queue_len == 2
    waiting = reqs(3)
    assert [r.rid for r in p.admission_order(View(waiting[::-1], {1: 32, 2: 64}))] == [0, 1, 2]  # 3 wait: fcfs
    assert [r.rid for r in p.admission_order(View(waiting[1:], {1: 32, 2: 64}))] == [2, 1]
    bad = {"max_queue_len": "-1"}, {"max_queue_len": "many"}, {"window": "8"}
    for options, message in zip(bad, ["integer >= 0, got '-1'", "integer >= 0", "unknown scheduler options window"]):
        with pytest.raises(ValueError, match=message):
            LongestPrefixMatch(SchedulerContext(8, 256, 1, 1024, options=options))


def test_max_queue_len_from_llm_options() -> None:
    from minisgl_core import LLM

    llm = LLM(
        str(tiny_model_dir("qwen3")), device="cpu", attention="torch", scheduler="lpm",
        scheduler_options={"max_queue_len": "0"},
    )  # fmt: skip
    assert llm.scheduler.policy.max_queue_len == 0


class TestLPMConformance(SchedulerSuite):
    scheduler = "lpm"


class TestLPMShortQueueConformance(SchedulerSuite):
    """The suite with a plugin option: every engine it drives runs lpm with ``max_queue_len=2``."""

    scheduler = "lpm"
    options = {"max_queue_len": "2"}

    def test_the_option_reaches_the_policy(self) -> None:
        assert self.runtime("lpm").scheduler.policy.max_queue_len == 2


def shared_prefix_prompts(groups: int = 4, per_group: int = 6, prefix: int = 96) -> list[list[int]]:
    """Requests of ``groups`` system prompts, arriving interleaved (group 0, 1, 2, 3, 0, 1, ...)."""
    rng = random.Random(0)
    systems = [[rng.randrange(256) for _ in range(prefix)] for _ in range(groups)]
    return [systems[g] + [rng.randrange(256) for _ in range(16)] for _ in range(per_group) for g in range(groups)]


def test_lpm_serves_more_prompt_tokens_from_the_cache_than_fcfs() -> None:
    from minisgl_core import LLM

    prompts = shared_prefix_prompts()
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    tokens, hits = {}, {}
    for name in ("fcfs", "lpm"):
        llm = LLM(
            str(tiny_model_dir("qwen3")), device="cpu", attention="torch", scheduler=name,
            num_kv_tokens=384, max_running_requests=4,
        )  # fmt: skip
        outs = llm.generate(prompts, params, use_tqdm=False)
        tokens[name] = [o.token_ids for o in outs]
        hits[name] = sum(o.num_cached_tokens for o in outs)
    assert tokens["lpm"] == tokens["fcfs"]
    assert hits["lpm"] > hits["fcfs"] + 1000, hits
