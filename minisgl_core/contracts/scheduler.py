"""The scheduling-policy contract: the *decisions* of scheduling.

The core keeps the mechanics (KV allocation, the page table, batch tensors, running the model, overlap);
a :class:`SchedulingPolicy` answers four questions each step, in the scheduling process (TP rank 0):

* :meth:`~SchedulingPolicy.admission_order` - which waiting requests to consider admitting, in what order;
* :meth:`~SchedulingPolicy.prefill_budget` - how many prompt tokens this step may prefill (chunked prefill);
* :meth:`~SchedulingPolicy.should_prefill` - whether this step prefills or decodes;
* :meth:`~SchedulingPolicy.choose_victim` - whom to retract when decoding runs out of KV memory.

A retracted request goes back to the waiting queue with its output so far and is prefilled again later;
no request is ever dropped. The policy is also told when a request is admitted (:meth:`~SchedulingPolicy.on_admit`)
and when it finishes (:meth:`~SchedulingPolicy.on_finish`), and reads the scheduler's clock through
``view.now`` (the clock of ``Req.arrival_time``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from minisgl_core.contracts.request import Req


@dataclass(frozen=True)
class SchedulerContext:
    """What a scheduler factory is told about the engine."""

    max_running_requests: int
    max_prefill_tokens: int
    page_size: int
    kv_capacity_tokens: int
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's ``--scheduler-option KEY=VALUE`` flags (``LLM(scheduler_options=...)``), unparsed: values are
    strings."""
    clock: Callable[[], float] = time.monotonic
    """The scheduler's clock in seconds (``view.now``, ``Req.arrival_time``); tests may pass a fake one."""


class SchedulerView(Protocol):
    """Read-only facts about the scheduler's state, handed to policy methods."""

    @property
    def waiting(self) -> Sequence[Req]: ...

    @property
    def running(self) -> Sequence[Req]:
        """Admitted requests (decoding, or mid-prefill when a chunked prompt is being filled)."""

    @property
    def prefilling(self) -> Sequence[Req]:
        """Running requests whose (chunked) prompt is not fully computed yet."""

    @property
    def available_tokens(self) -> int:
        """Free KV tokens plus what the prefix cache could evict."""

    @property
    def num_steps(self) -> int:
        """Steps this scheduler planned so far (prefill and decode); while planning, the index of this step."""

    @property
    def now(self) -> float:
        """Seconds on the scheduler's clock (``SchedulerContext.clock``), comparable with ``Req.arrival_time``."""

    def prefix_match_len(self, req: Req) -> int:
        """How many of ``req``'s tokens the prefix cache holds now (whole pages).

        A peek (:meth:`~minisgl_core.contracts.CachePolicy.peek_prefix_len`): ranking requests by it does not
        change what the cache evicts next.
        """


class SchedulingPolicy:
    """First-come-first-served decisions; subclass and override what your policy changes."""

    def __init__(self, ctx: SchedulerContext) -> None:
        self.ctx = ctx

    def admission_order(self, view: SchedulerView) -> list[Req]:
        """Waiting requests in the order the core should try to admit them.

        The core admits from the front while KV memory, free request rows and the prefill budget allow, and
        stops at the first request that does not fit (so a large request is not starved by small ones).
        Default: submission order.
        """
        return sorted(view.waiting, key=lambda r: r.arrival)

    def prefill_budget(self, view: SchedulerView) -> int:
        """Prompt tokens this prefill step may compute (a longer prompt is split into chunks)."""
        return self.ctx.max_prefill_tokens

    def should_prefill(self, view: SchedulerView) -> bool:
        """Whether this step should prefill (continue a chunked prompt or admit) rather than decode.

        Called only when something waits or a prompt is mid-prefill. Default: prefill first, as long as a
        request row is free or a chunked prompt is unfinished.
        """
        if view.prefilling:
            return True
        return len(view.running) < self.ctx.max_running_requests

    def decode_reserve(self, running: Sequence[Req]) -> int:
        """KV tokens to keep free for the future decode of ``running`` when admitting more requests.

        Too little causes retractions later, too much admits fewer requests. Default: half of what the
        running requests may still generate.
        """
        return sum(r.remaining_new_tokens for r in running) // 2

    def choose_victim(self, candidates: Sequence[Req], view: SchedulerView) -> Req:
        """The request to retract when a decode step cannot get KV memory. Default: the latest arrival."""
        return max(candidates, key=lambda r: r.arrival)

    def mix_decodes(self, prefill_tokens: int, view: SchedulerView) -> bool:
        """Whether a prefill step that computes ``prefill_tokens`` prompt tokens also advances every running
        request by one token (a *mixed* step). Asked only when mixing is on (``--mixed-chunk``) and some request
        decodes. Mixing keeps decoding going while prompts arrive (latency); a step already full of prompt
        tokens keeps the GPU busy, and its decodes are cheaper in the next decode step's CUDA graph
        (throughput). Default: mix when the prompt tokens are at most half of ``max_prefill_tokens``."""
        return prefill_tokens <= self.ctx.max_prefill_tokens // 2

    def on_admit(self, req: Req, view: SchedulerView) -> None:  # noqa: B027 - optional notification
        """Called right after ``req`` was admitted (it is in ``view.running`` now), while the step that
        computes its first chunk is planned. A retracted request is admitted again later
        (``req.num_retractions > 0``). Default: nothing."""

    def on_finish(self, req: Req, view: SchedulerView) -> None:  # noqa: B027 - optional notification
        """Called once when ``req`` finished (``req.finish_reason``: stop, length or abort), after it left
        the queues and released its KV memory. Default: nothing."""
