"""A step's sampled results on their way from the device to the host."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from minisgl_core.engine.sampler import SampleResult


@dataclass
class StepOutput:
    """What one step sampled, copied to the host asynchronously; :meth:`wait` blocks until it is there."""

    host: SampleResult
    event: torch.cuda.Event | None

    @classmethod
    def start(cls, result: SampleResult, device: torch.device) -> StepOutput:
        """Start copying ``result`` (on ``device``) into pinned host memory, behind the work already queued
        on the current stream; on the CPU ``result`` already is the host copy."""
        if device.type != "cuda":
            return cls(result, None)

        def to_host(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
            return host.copy_(t, non_blocking=True)

        host = SampleResult(
            to_host(result.tokens), to_host(result.logprobs), to_host(result.top_ids), to_host(result.top_logprobs),
            result.prompt.to_host(to_host) if result.prompt is not None else None,
        )  # type: ignore[arg-type]  # fmt: skip
        event = torch.cuda.Event()
        event.record()
        return cls(host, event)

    def wait(self) -> SampleResult:
        """Wait for the step to finish and return its results as host tensors."""
        if self.event is not None:
            self.event.synchronize()
        return self.host
