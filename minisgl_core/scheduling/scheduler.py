"""The step loop: admit, plan, run, and read results one step late (overlap scheduling).

Each :meth:`Scheduler.step` plans step ``n+1`` and launches it on the device *before* it reads the
tokens of step ``n``, so the host never waits for the device while there is work. Decode steps take their
input tokens from the device (the engine's ``last_token``), which is what makes planning ahead possible.
With ``disable_overlap`` the results of a step are read right after it is launched. With ``mixed`` a prefill
step also carries one token of every running request (a *mixed* step: one forward for both), so arriving
prompts do not stall the requests that are decoding.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from minisgl_core.contracts.batch import Phase
from minisgl_core.contracts.request import FinishReason, Req
from minisgl_core.contracts.scheduler import SchedulingPolicy
from minisgl_core.engine import Engine, StepOutput, StepPlan
from minisgl_core.scheduling.grammar import GrammarManager
from minisgl_core.scheduling.kv_manager import KVManager, pages_for, reusable_ids
from minisgl_core.scheduling.prompt_scores import PromptScores
from minisgl_core.scheduling.step_stats import StepStats, step_kind
from minisgl_core.scheduling.updates import ReqUpdate, read_tokens

logger = logging.getLogger("minisgl.scheduler")


@dataclass
class _InFlight:
    plan: StepPlan
    reqs: list[Req]
    sampled: list[Req]
    output: StepOutput | None  # None between the forward and the sampling of a constrained step
    kind: str


class Scheduler:
    """Waiting and running queues over one :class:`Engine` (rank 0 of a TP group)."""

    def __init__(
        self,
        engine: Engine,
        kv: KVManager,
        policy: SchedulingPolicy,
        overlap: bool,
        clock: Callable[[], float] = time.monotonic,
        mixed: bool = False,
        grammar: GrammarManager | None = None,
    ) -> None:
        self.engine = engine
        self.kv = kv
        self.policy = policy
        self.overlap = overlap
        self.mixed = mixed
        self.grammar = grammar
        self.compiling: list[Req] = []
        """Requests waiting for their grammar to compile (then they join ``waiting``)."""
        self.grammar_errors: list[tuple[Req, str, str]] = []
        """``(request, message, field)``: constraints that failed to compile (the caller reports them)."""
        self.step_stats = StepStats()
        self.clock = clock
        self.waiting: list[Req] = []
        self.running: list[Req] = []
        self._in_flight: _InFlight | None = None
        self._prefilling: list[Req] = []
        self._drained: list[ReqUpdate] = []
        self.num_retractions = 0
        self.num_steps = 0
        """Steps planned (and launched) so far; while one is planned, its index."""

    # -- the policy's view ----------------------------------------------------------------------------

    @property
    def prefilling(self) -> list[Req]:
        """Admitted requests whose prompt is not fully computed yet (a chunked prompt)."""
        return [r for r in self._prefilling if r.row is not None and r.in_prefill]

    @property
    def available_tokens(self) -> int:
        return self.kv.available_tokens

    @property
    def now(self) -> float:
        return self.clock()

    def prefix_match_len(self, req: Req) -> int:
        """The cached prefix ``req`` would be admitted with, peeked: the cache's LRU order is left alone."""
        return self.kv.cache.peek_prefix_len(reusable_ids(req))

    # -- requests -------------------------------------------------------------------------------------

    def add(self, req: Req) -> None:
        compiling = req.grammar is None and req.params.constraint is not None and self.grammar is not None
        (self.compiling if compiling else self.waiting).append(req)  # compiled grammars join the waiting queue

    def abort(self, req: Req) -> None:
        """Stop ``req`` now and free everything it holds (a step in flight may still compute for it)."""
        if req.finished:
            return
        if req in self.running:
            self.finish(req, FinishReason.ABORT)
            return
        req.finish_reason = FinishReason.ABORT
        for queue in (self.waiting, self.compiling):
            if req in queue:
                queue.remove(req)
        self.policy.on_finish(req, self)

    def report(self, req: Req, reason: FinishReason) -> None:
        """Hand ``req``'s end to the caller with the next step's updates."""
        self._drained.append(ReqUpdate(req, [], reason))

    def has_work(self) -> bool:
        return bool(self.waiting or self.running or self._in_flight or self._drained or self.compiling)

    # -- the loop ---------------------------------------------------------------------------------------

    def step(self) -> list[ReqUpdate]:
        """Plan and launch one step; return the outputs of the step before it (of this one without overlap)."""
        start = time.perf_counter()
        if self.compiling:
            self.grammar.admit_compiled(self)  # type: ignore[union-attr]
        plan_and_reqs = self._schedule()
        launched = logits = None
        if plan_and_reqs is not None:
            plan, reqs, sampled = plan_and_reqs
            kind = step_kind(plan.phase is Phase.PREFILL, plan.num_device_inputs)
            if self.grammar is not None and self.grammar.has_live():  # sampled once the bitmask is known
                launched, logits = _InFlight(plan, reqs, sampled, None, kind), self.engine.forward(plan)
            else:
                launched = _InFlight(plan, reqs, sampled, self.engine.run(plan), kind)
            self.num_steps += 1
        updates, self._drained = self._drained, []
        read = self._in_flight if self.overlap else launched
        if self._in_flight is not None:
            updates += self._process(self._in_flight)
        if launched is not None and logits is not None:  # the previous tokens are accepted: mask this step
            mask = self.grammar.step_mask(self, launched.sampled)  # type: ignore[union-attr]
            launched.output = self.engine.sample(launched.plan, logits, mask)
        self._in_flight = launched
        if not self.overlap and self._in_flight is not None:
            updates += self._process(self._in_flight)
            self._in_flight = None
        if read is not None:
            self.step_stats.record(read.kind, read.plan.num_tokens, time.perf_counter() - start)
        return updates

    def _drain(self) -> None:
        """Read the step in flight now (needed before retracting, which rewinds requests)."""
        if self._in_flight is not None:
            self._drained += self._process(self._in_flight)
            self._in_flight = None

    def finish(self, req: Req, reason: FinishReason) -> None:
        """End a running request now: its pages go back, the policy is told."""
        req.finish_reason = reason
        self.running.remove(req)
        self.kv.release(req)
        self.policy.on_finish(req, self)

    def _process(self, flight: _InFlight) -> list[ReqUpdate]:
        assert flight.output is not None
        return read_tokens(self, flight.sampled, flight.output.wait(), flight.plan, flight.reqs)

    # -- planning ---------------------------------------------------------------------------------------

    def _schedule(self) -> tuple[StepPlan, list[Req], list[Req]] | None:
        has_prefill = bool(self.waiting) or bool(self.prefilling)
        if has_prefill and self.policy.should_prefill(self):
            planned = self._plan_prefill()
            if planned is not None:
                return planned
        return self._plan_decode()

    def _plan_prefill(self) -> tuple[StepPlan, list[Req], list[Req]] | None:
        budget = self.policy.prefill_budget(self)
        ps = self.kv.page_size
        reqs: list[Req] = []
        q_lens: list[int] = []
        slots: list[torch.Tensor] = []
        ids: list[int] = []
        penalty_init: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        scored = PromptScores()

        def take(req: Req, n: int) -> None:  # allocate at once, so the next decision sees what is left
            start = req.kv_len
            scored.add(req, len(reqs), start, n)
            slots.append(self.kv.extend(req, n))
            ids.extend(req.all_ids[start : start + n])
            reqs.append(req)
            q_lens.append(n)

        for req in list(self.prefilling):  # unfinished chunked prompts first
            n = min(req.fill_len - req.kv_len, budget)
            if n <= 0 or not self.kv.ensure_free_pages(pages_for(req.kv_len, req.kv_len + n, ps)):
                break
            take(req, n)
            budget -= n
        for req in self.policy.admission_order(self):
            if budget <= 0 or len(self.running) >= self.policy.ctx.max_running_requests:
                break
            n = self._try_admit(req, budget)
            if n is None:
                break
            if req.params.has_penalties:
                outs = torch.tensor(req.output_ids, dtype=torch.int64)
                penalty_init.append((req.row, torch.tensor(req.prompt_ids), outs))
            take(req, n)
            budget -= n
        if not reqs:
            return None
        self._prefilling = [r for r in reqs if r.in_prefill]
        completed = [i for i, r in enumerate(reqs) if not r.in_prefill]
        mix = self.mixed and self.policy.mix_decodes(sum(q_lens), self)
        decodes = self._mixed_decodes(set(reqs)) if mix else []
        if decodes:  # their input tokens come from the device; the placeholders are overwritten there
            slots.append(self.kv.extend_decode(decodes))
            ids.extend([0] * len(decodes))
            q_lens.extend([1] * len(decodes))
        sampled_idx = completed + list(range(len(reqs), len(reqs) + len(decodes)))
        reqs += decodes
        plan = self._make_plan(Phase.PREFILL, reqs, q_lens, torch.cat(slots), sampled_idx)
        plan.input_ids = torch.tensor(ids, dtype=torch.int64)
        plan.num_device_inputs = len(decodes)
        plan.penalty_init = penalty_init
        scored.into(plan)
        for i in completed:  # prompts completed by this step: share them now (the next plan moves rows)
            self.kv.cache_prompt(reqs[i])
        return plan, reqs, [reqs[i] for i in sampled_idx]

    def _mixed_decodes(self, taken: set[Req]) -> list[Req]:
        """The running requests a mixed step advances by one token (none when their pages are not free:
        the decode step that follows handles memory pressure)."""
        decodes = [r for r in self.running if r not in taken and r.decodable]
        if decodes and not self.kv.ensure_free_pages(self.kv.decode_pages_needed(decodes)):
            return []
        return decodes

    def _try_admit(self, req: Req, budget: int) -> int | None:
        """Admit ``req`` when its whole remaining prompt (plus the policy's decode reserve, unless nothing
        else runs) fits in KV memory; return the size of its first chunk, or None."""
        ps = self.kv.page_size
        cache = self.kv.cache
        match = cache.match_prefix(reusable_ids(req))
        cache.lock(match.handle)
        need_pages = pages_for(match.length, req.fill_len, ps)
        reserve_pages = -(-self.policy.decode_reserve([*self.running, req]) // ps) if self.running else 0
        chunk = min(req.fill_len - match.length, budget)
        available_pages = self.kv.allocator.num_free_pages + cache.evictable_tokens // ps
        if available_pages < need_pages + reserve_pages or not self.kv.ensure_free_pages(
            pages_for(match.length, match.length + chunk, ps)
        ):
            cache.unlock(match.handle)
            return None
        self.waiting.remove(req)
        self.running.append(req)
        self.kv.admit(req, match.length, match.slots, match.handle)
        if req.num_retractions == 0:
            req.num_cached_tokens, req.admit_time = match.length, self.now
        self.policy.on_admit(req, self)
        return chunk

    def _plan_decode(self) -> tuple[StepPlan, list[Req], list[Req]] | None:
        reqs = [r for r in self.running if r.decodable]
        while reqs and not self.kv.ensure_free_pages(self.kv.decode_pages_needed(reqs)):
            if self._in_flight is not None:  # results may free memory, and retraction needs them anyway
                self._drain()
                return self._schedule()
            self._retract(self.policy.choose_victim(self.running, self))
            reqs = [r for r in self.running if r.decodable]
        if not reqs:
            return None
        slots = self.kv.extend_decode(reqs)
        plan = self._make_plan(Phase.DECODE, reqs, [1] * len(reqs), slots, list(range(len(reqs))))
        return plan, reqs, reqs

    def _retract(self, req: Req) -> None:
        """Send ``req`` back to the waiting queue; it will prefill its prompt and output so far again."""
        self.running.remove(req)
        self.kv.release(req)
        req.fill_len = len(req.all_ids)
        req.num_sampled = len(req.output_ids)
        req.num_retractions += 1
        self.num_retractions += 1
        self.waiting.append(req)
        logger.info("retracted request %s (%d tokens) to free KV memory", req.rid, req.fill_len)

    def _make_plan(
        self, phase: Phase, reqs: list[Req], q_lens: list[int], slots: torch.Tensor, sample: list[int]
    ) -> StepPlan:
        return StepPlan.for_requests(phase, reqs, q_lens, slots, sample, self.kv.table.take_writes())

    def check_memory(self) -> None:
        """Assert the KV accounting invariant (tests)."""
        self.kv.check(self.running)
