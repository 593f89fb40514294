"""Per-step timeline of a run: is the GPU busy, or waiting for the host?

``StepTrace(engine)`` wraps :meth:`Engine.execute` (and :meth:`Engine.forward` / :meth:`Engine.sample`, the
two halves the scheduler runs for steps with constrained requests) to record a CUDA event when each step's
work is queued (before) and after its last kernel. Since steps run in stream order, the span of step ``n`` on the GPU is
``end - start`` and the GPU sat idle for ``start[n] - end[n-1]``. A span also includes any wait for the host
to queue the rest of the step, so the trace measures the host too: ``host_busy`` is the host's time per step
(one loop of scheduling, launching and reading results) minus the time it spent blocked on the GPU. Where
``host_busy`` is about the span, the host is the bottleneck. Used by ``offline.py --step-trace FILE``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from minisgl_core.engine import StepOutput

BUCKETS = (1, 8, 32, 64, 128, 192, 256, 1 << 30)


class StepTrace:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.steps: list[tuple[str, int, int, torch.cuda.Event, torch.cuda.Event, float, float]] = []
        """(phase, batch size, tokens, start event, end event, host time at start, host wait before it)"""
        self.enabled = False
        self.waited = 0.0  # host seconds blocked on the GPU since the last step
        inner = engine.execute
        wait = StepOutput.wait

        def timed_wait(output):  # noqa: ANN001, ANN202
            start = time.perf_counter()
            try:
                return wait(output)
            finally:
                self.waited += time.perf_counter() - start

        StepOutput.wait = timed_wait  # type: ignore[method-assign]

        def execute(plan):  # noqa: ANN001, ANN202
            if not self.enabled:
                return inner(plan)
            host_start = time.perf_counter()
            waited, self.waited = self.waited, 0.0
            start = torch.cuda.Event(enable_timing=True)
            start.record()
            out = inner(plan)
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            phase = plan.phase.name.lower()
            self.steps.append((phase, plan.batch_size, plan.num_tokens, start, end, host_start, waited))
            return out

        engine.execute = execute
        forward, sample = engine.forward, engine.sample
        pending: list[tuple[Any, torch.cuda.Event, float, float]] = []

        def traced_forward(plan):  # noqa: ANN001, ANN202 - a constrained step: forward, then sample under a mask
            if self.enabled:
                start = torch.cuda.Event(enable_timing=True)
                start.record()
                waited, self.waited = self.waited, 0.0
                pending.append((plan, start, time.perf_counter(), waited))
            return forward(plan)

        def traced_sample(plan, logits, mask=None):  # noqa: ANN001, ANN202
            out = sample(plan, logits, mask)
            if pending and pending[-1][0] is plan:
                _, start, host_start, waited = pending.pop()
                end = torch.cuda.Event(enable_timing=True)
                end.record()
                phase = plan.phase.name.lower()
                self.steps.append((phase, plan.batch_size, plan.num_tokens, start, end, host_start, waited))
            return out

        engine.forward, engine.sample = traced_forward, traced_sample

    def summary(self, path: Path | None = None) -> dict[str, Any]:
        """Synchronise, then totals per phase and per decode batch-size bucket (milliseconds)."""
        torch.cuda.synchronize()
        rows = []
        t0 = self.steps[0][3]
        prev_end = None
        for n, (phase, bs, tokens, start, end, h0, _) in enumerate(self.steps):
            begin, finish = t0.elapsed_time(start), t0.elapsed_time(end)
            idle = max(begin - prev_end, 0.0) if prev_end is not None else 0.0
            # host loop from this step's launch to the next one's, minus the waits inside it
            host = (self.steps[n + 1][5] - h0 - self.steps[n + 1][6]) * 1e3 if n + 1 < len(self.steps) else 0.0
            rows.append(dict(phase=phase, bs=bs, tokens=tokens, gpu_ms=finish - begin, idle_ms=idle, host_busy_ms=host))
            prev_end = finish
        out: dict[str, Any] = {"steps": len(rows), "wall_ms": prev_end}
        for phase in ("prefill", "decode"):
            sel = [r for r in rows if r["phase"] == phase]
            out[phase] = {
                "steps": len(sel),
                "gpu_ms": round(sum(r["gpu_ms"] for r in sel), 1),
                "idle_before_ms": round(sum(r["idle_ms"] for r in sel), 1),
            }
        buckets = []
        for lo, hi in zip(BUCKETS, BUCKETS[1:]):
            sel = [r for r in rows if r["phase"] == "decode" and lo <= r["bs"] < hi]
            if sel:
                n = len(sel)
                buckets.append(dict(
                    bs=f"{lo}-{hi - 1}" if hi < 1 << 30 else f">={lo}", steps=n,
                    gpu_ms_per_step=round(sum(r["gpu_ms"] for r in sel) / n, 3),
                    idle_ms_per_step=round(sum(r["idle_ms"] for r in sel) / n, 3),
                    host_busy_ms_per_step=round(sum(r["host_busy_ms"] for r in sel) / n, 3),
                ))  # fmt: skip
        out["decode_by_batch_size"] = buckets
        if path is not None:
            path.write_text(json.dumps({"summary": out, "steps": rows}) + "\n")
        return out
