"""Conformance suite for scheduling policies: the method contracts, liveness under memory pressure, and
fairness bounds, measured through the real scheduler loop of a tiny random model.

A scheduler plugin's whole test::

    from minisgl_core.testing import SchedulerSuite

    class TestMyScheduler(SchedulerSuite):
        scheduler = "my-scheduler"

Liveness: every request finishes, with the same greedy tokens as with ample memory, when the KV cache is far
too small for the load (requests wait, prompts are chunked, running requests are retracted), both when all
requests arrive at once and when they keep arriving. A policy that stops making progress fails with the
requests it left waiting instead of hanging. Fairness, on the streaming workload: the longest wait of any
request (steps from submission to first admission) stays within ``max_wait_ratio`` times the longest wait
under ``fcfs`` plus ``max_wait_slack`` steps, and, when ``max_overtakes`` is set, no request sees more than
that many later requests admitted before it (``fcfs``: 0).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from minisgl_core.contracts.request import Req
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.contracts.scheduler import SchedulerContext, SchedulingPolicy
from minisgl_core.plugins import SCHEDULER, lookup
from minisgl_core.testing.scheduler_driver import Arrival, DriveResult, drive
from minisgl_core.testing.suite_base import ConformanceSuite

_REFERENCE_RUNS: dict[tuple[str, ...], DriveResult] = {}


class _View:
    """A :class:`~minisgl_core.scheduling.SchedulerView` over plain lists, for the contract test."""

    def __init__(self, waiting: list[Req], running: list[Req], available: int, matches: dict[int, int]) -> None:
        self.waiting, self.running, self.available_tokens = waiting, running, available
        self.prefilling = [r for r in running if r.in_prefill]
        self.num_steps = 0
        self._matches = matches

    def prefix_match_len(self, req: Req) -> int:
        return self._matches.get(req.rid, 0)


def _req(rid: int, prompt_len: int, max_new: int = 16) -> Req:
    params = SamplingParams(max_tokens=max_new)
    return Req(rid, list(range(prompt_len)), params, max_new, frozenset(), arrival=rid)


class SchedulerSuite(ConformanceSuite):
    """Checks the scheduler registered as :attr:`scheduler` (see the module docstring)."""

    scheduler: ClassVar[str] = ""
    """The registered name of the policy under test."""
    reference: ClassVar[str] = "fcfs"
    max_wait_ratio: ClassVar[float] = 2.0
    max_wait_slack: ClassVar[int] = 8
    max_overtakes: ClassVar[int | None] = None
    """Most later arrivals that may be admitted before any request; ``None``: not bounded."""
    caches: ClassVar[tuple[str, ...]] = ("radix",)
    """Cache policies the memory-pressure test runs with."""
    params: ClassVar[dict[str, str]] = {"page_size": "page_sizes", "cache": "caches"}

    def runtime(self, scheduler: str, **overrides: Any):  # noqa: ANN201 - a minisgl_core.runtime.Runtime
        from minisgl_core.llm import LLM
        from minisgl_core.testing.tiny_models import tiny_model_dir

        options = self.options if scheduler == self.scheduler else {}
        kwargs: dict[str, Any] = dict(device=self.device, attention="torch", scheduler=scheduler)
        kwargs["scheduler_options"] = options
        kwargs.update(overrides)
        return LLM(str(tiny_model_dir("qwen3")), **kwargs).runtime

    def run(self, arrivals: list[Arrival], scheduler: str | None = None, **overrides: Any) -> DriveResult:
        """Drive ``arrivals`` through a fresh engine with ``scheduler`` (default: the one under test).
        Runs of the reference scheduler are memoised for the session (they never change)."""
        scheduler = scheduler or self.scheduler
        key = (scheduler, self.device, repr(arrivals), repr(sorted(overrides.items())))
        if scheduler == self.reference and key in _REFERENCE_RUNS:
            return _REFERENCE_RUNS[key]
        total = sum(len(a.prompt_ids) + a.max_tokens for a in arrivals)
        result = drive(self.runtime(scheduler, **overrides), arrivals, max_steps=4 * total + 200)
        if scheduler == self.reference:
            _REFERENCE_RUNS[key] = result
        return result

    # -- workloads ------------------------------------------------------------------------------------------

    @staticmethod
    def burst(seed: int = 0) -> list[Arrival]:
        """Ten requests at once: short and long prompts, some sharing a prefix, one near the KV limit."""
        rng = random.Random(seed)
        system = [rng.randrange(256) for _ in range(40)]
        out = []
        for i in range(8):
            prompt = (system if i % 3 == 0 else []) + [rng.randrange(256) for _ in range(rng.randint(1, 60))]
            out.append(Arrival(0, prompt, rng.randint(8, 32)))
        out.append(Arrival(0, [rng.randrange(256) for _ in range(140)], 8))
        out.append(Arrival(0, [5], 1))
        return out

    @staticmethod
    def stream(seed: int = 0) -> list[Arrival]:
        """Sixteen requests arriving over time; two thirds share one of two long prefixes."""
        rng = random.Random(seed)
        systems = [[rng.randrange(256) for _ in range(48)] for _ in range(2)]
        out = []
        for i in range(16):
            head = systems[i % 2] if i % 3 else []
            out.append(
                Arrival(i // 2, head + [rng.randrange(256) for _ in range(rng.randint(2, 30))], rng.randint(4, 24))
            )
        return out

    # -- contract -------------------------------------------------------------------------------------------

    def test_policy_contract(self) -> None:
        ctx = SchedulerContext(4, 64, page_size=1, kv_capacity_tokens=512, options=MappingProxyType(dict(self.options)))
        policy = lookup(SCHEDULER, self.scheduler).create(ctx)
        assert isinstance(policy, SchedulingPolicy), f"factory returned {type(policy).__name__}"
        waiting = [_req(i, 10 + 7 * i) for i in range(6)]
        running = [_req(10 + i, 5) for i in range(2)]
        for r in running:
            r.kv_len = 5
        view = _View(list(waiting), list(running), available=300, matches={1: 8, 4: 16})
        order = policy.admission_order(view)
        assert isinstance(order, Sequence) and all(isinstance(r, Req) for r in order)
        assert len({r.rid for r in order}) == len(order), "admission_order lists a request twice"
        assert {r.rid for r in order} <= {r.rid for r in waiting}, "admission_order returned a request not waiting"
        budget = policy.prefill_budget(view)
        assert isinstance(budget, int) and budget > 0, f"prefill_budget must be a positive int, got {budget!r}"
        assert isinstance(policy.should_prefill(view), bool)
        reserve = policy.decode_reserve(running)
        assert isinstance(reserve, int) and reserve >= 0, f"decode_reserve must be an int >= 0, got {reserve!r}"
        assert policy.choose_victim(running, view) in running, "choose_victim must return one of the candidates"
        assert [r.rid for r in view.waiting] == [r.rid for r in waiting], "the policy changed the waiting queue"

    # -- liveness -----------------------------------------------------------------------------------------

    def test_every_request_finishes_under_memory_pressure(self, page_size: int, cache: str) -> None:
        arrivals = self.burst()
        ample = self.run(arrivals, self.reference)  # greedy tokens depend on neither paging nor caching
        tight = self.run(
            arrivals, page_size=page_size, cache=cache, num_kv_tokens=176, max_prefill_tokens=32,
            max_running_requests=6,
        )  # fmt: skip
        assert tight.outputs == ample.outputs, "tokens changed under memory pressure"

    def test_streaming_arrivals_finish(self, page_size: int) -> None:
        arrivals = self.stream()
        ample = self.run(arrivals, self.reference)
        tight = self.run(
            arrivals, page_size=page_size, num_kv_tokens=160, max_prefill_tokens=48, max_running_requests=4
        )
        assert tight.outputs == ample.outputs, "tokens changed under memory pressure"

    # -- fairness -----------------------------------------------------------------------------------------

    def test_fairness_bounds(self) -> None:
        arrivals = self.stream(seed=1)
        tight = dict(num_kv_tokens=256, max_prefill_tokens=64, max_running_requests=4)
        mine = self.run(arrivals, **tight)
        fcfs = self.run(arrivals, self.reference, **tight)
        bound = self.max_wait_ratio * fcfs.max_wait + self.max_wait_slack
        assert mine.max_wait <= bound, (
            f"a request waited {mine.max_wait} steps; bound {bound:.0f} (fcfs: {fcfs.max_wait})"
        )
        if self.max_overtakes is not None:
            worst = max(mine.overtakes())
            assert worst <= self.max_overtakes, f"a request was overtaken by {worst} later arrivals"
