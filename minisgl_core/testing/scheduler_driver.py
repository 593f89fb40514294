"""Driving an engine's scheduler step by step with requests that arrive over time, and measuring when each
request was admitted and finished. A policy that stops making progress is reported, not waited for."""

from __future__ import annotations

from dataclasses import dataclass, field

from minisgl_core.contracts.request import Req
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.runtime import Runtime


@dataclass(frozen=True)
class Arrival:
    """A request submitted before step ``step`` (0 = before the first step)."""

    step: int
    prompt_ids: list[int]
    max_tokens: int


@dataclass
class Trace:
    """What happened to one request."""

    arrival: Arrival
    req: Req
    admitted_at: int | None = None
    finished_at: int | None = None

    @property
    def wait(self) -> int:
        """Steps between submission and first admission."""
        assert self.admitted_at is not None
        return self.admitted_at - self.arrival.step


@dataclass
class DriveResult:
    traces: list[Trace]
    steps: int
    retractions: int = 0
    outputs: list[list[int]] = field(default_factory=list)

    @property
    def max_wait(self) -> int:
        return max(t.wait for t in self.traces)

    def overtakes(self) -> list[int]:
        """Per request, how many requests submitted after it were admitted (for the first time) in an
        earlier step than it was."""
        return [
            sum(
                1
                for o in self.traces
                if o.req.arrival > t.req.arrival and o.admitted_at is not None and o.admitted_at < t.admitted_at
            )
            for t in self.traces
        ]


def drive(runtime: Runtime, arrivals: list[Arrival], max_steps: int, stall_steps: int = 50) -> DriveResult:
    """Submit ``arrivals`` at their steps and step the scheduler until every request finished.

    Raises ``AssertionError`` when that takes more than ``max_steps`` steps, or when ``stall_steps`` steps in
    a row neither admit, compute nor finish anything while requests wait (a livelock), and at the end when
    the KV page accounting is broken.
    """
    scheduler = runtime.scheduler
    greedy = {}
    traces: list[Trace] = []
    pending = sorted(arrivals, key=lambda a: a.step)
    retractions_before = scheduler.num_retractions
    step = idle = 0
    while pending or any(t.finished_at is None for t in traces):
        while pending and pending[0].step <= step:
            a = pending.pop(0)
            params = greedy.setdefault(
                a.max_tokens, SamplingParams(temperature=0.0, max_tokens=a.max_tokens, ignore_eos=True)
            )
            req = runtime.make_request(a.prompt_ids, params)
            scheduler.add(req)
            traces.append(Trace(a, req))
        if step >= max_steps:
            left = [t.req.rid for t in traces if t.finished_at is None]
            raise AssertionError(f"requests {left} still unfinished after {max_steps} steps (starvation or livelock)")
        before = _progress(traces)
        if scheduler.has_work():
            scheduler.step()
        for t in traces:
            if t.admitted_at is None and (t.req.row is not None or t.req.finished):
                t.admitted_at = step
            if t.finished_at is None and t.req.finished:
                t.finished_at = step
        progress = _progress(traces) != before
        idle = 0 if progress or not scheduler.waiting else idle + 1
        if idle >= stall_steps:
            waiting = [r.rid for r in scheduler.waiting]
            raise AssertionError(f"no progress for {stall_steps} steps with requests {waiting} waiting (livelock)")
        step += 1
    scheduler.check_memory()
    assert not scheduler.running and not scheduler.waiting, "finished requests left in the scheduler's queues"
    outputs = [list(t.req.output_ids) for t in traces]
    return DriveResult(traces, step, scheduler.num_retractions - retractions_before, outputs)


def _progress(traces: list[Trace]) -> tuple[int, int, int]:
    """Computed positions, generated tokens and finished requests so far: it changes on every useful step."""
    return (
        sum(t.req.kv_len for t in traces),
        sum(len(t.req.output_ids) for t in traces),
        sum(t.req.finished for t in traces),
    )
