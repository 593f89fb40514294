"""What the step loop spent its time on, per kind of step: the figures behind the server's periodic status
line and the serving benchmarks' step trace."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("prefill", "mixed", "decode")
"""``prefill``: prompt chunks only; ``mixed``: prompt chunks plus one token of every running request;
``decode``: one token of every running request."""


@dataclass
class StepKindStats:
    steps: int = 0
    tokens: int = 0
    """Tokens computed (prompt chunks plus decoded tokens)."""
    seconds: float = 0.0
    """Wall time of the ``Scheduler.step`` calls that returned these steps' tokens: with overlap, about the
    device time of the step (or the host time of planning the next, when that is longer)."""


@dataclass
class StepStats:
    """Cumulative per-kind counters (read them twice and subtract for an interval)."""

    kinds: dict[str, StepKindStats] = field(default_factory=lambda: {k: StepKindStats() for k in KINDS})

    def record(self, kind: str, tokens: int, seconds: float) -> None:
        stats = self.kinds[kind]
        stats.steps += 1
        stats.tokens += tokens
        stats.seconds += seconds

    def snapshot(self) -> dict[str, tuple[int, int, float]]:
        """``{kind: (steps, tokens, seconds)}``, a copy."""
        return {k: (s.steps, s.tokens, s.seconds) for k, s in self.kinds.items()}


def step_kind(is_prefill: bool, num_decodes: int) -> str:
    if not is_prefill:
        return "decode"
    return "mixed" if num_decodes else "prefill"
