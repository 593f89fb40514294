"""The ``lpm`` policy: admit the waiting requests whose prompts have the longest cached prefix first.

Requests that share a prefix with KV already in the cache are admitted before that KV is evicted, so it is
computed once and reused, instead of being recomputed by requests that arrive interleaved with others
(Zheng et al., "SGLang: Efficient Execution of Structured Language Model Programs", section 3). Matching
every waiting request costs host time at each prefill step, so when more than
:attr:`LongestPrefixMatch.max_queue_len` requests wait the policy falls back to first-come-first-served order,
as SGLang does (``--scheduler-option max_queue_len=N`` changes the limit; 0 always uses arrival order).

Only the public scheduling API is used: :class:`~minisgl_core.scheduling.SchedulingPolicy` and the
:class:`~minisgl_core.scheduling.SchedulerView` it is handed.
"""

from __future__ import annotations

from minisgl_core.contracts import Req, SchedulerContext, SchedulerView, SchedulingPolicy

OPTIONS = ("max_queue_len",)


class LongestPrefixMatch(SchedulingPolicy):
    """Longest cached prefix first; ties (and long queues) in arrival order. Everything else as ``fcfs``."""

    max_queue_len: int = 128
    """Above this many waiting requests, admit in arrival order without matching (option ``max_queue_len``)."""

    def __init__(self, ctx: SchedulerContext) -> None:
        super().__init__(ctx)
        unknown = sorted(set(ctx.options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"lpm: unknown scheduler options {', '.join(unknown)}; it takes {', '.join(OPTIONS)}")
        if "max_queue_len" in ctx.options:
            self.max_queue_len = _count("max_queue_len", ctx.options["max_queue_len"])

    def admission_order(self, view: SchedulerView) -> list[Req]:
        waiting = sorted(view.waiting, key=lambda r: r.arrival)
        if len(waiting) > self.max_queue_len:
            return waiting
        matched = {r.rid: view.prefix_match_len(r) for r in waiting}
        return sorted(waiting, key=lambda r: -matched[r.rid])  # stable: equal matches keep arrival order


def _count(name: str, text: str) -> int:
    """``text`` as an integer >= 0 (``ValueError`` naming the option otherwise)."""
    if not text.strip().isdecimal():
        raise ValueError(f"lpm: {name} must be an integer >= 0, got {text!r}")
    return int(text)
