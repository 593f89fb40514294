"""The ``fcfs`` scheduler: the contract's default decisions (first come, first served, prefill first,
chunked prefill, the latest arrival retracted under memory pressure)."""

from __future__ import annotations

from minisgl_core.contracts.options import reject_options
from minisgl_core.contracts.scheduler import SchedulerContext, SchedulingPolicy


class FCFSPolicy(SchedulingPolicy):
    """``fcfs``: every decision is the default of :class:`SchedulingPolicy`."""


def create(ctx: SchedulerContext) -> FCFSPolicy:
    """Factory registered as the ``fcfs`` scheduler."""
    reject_options(ctx.options, "the fcfs scheduler")
    return FCFSPolicy(ctx)
