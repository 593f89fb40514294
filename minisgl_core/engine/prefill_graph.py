"""A CUDA graph for prefill steps of one fixed size (the scheduler's full chunks).

Launching a prefill step's kernels from Python costs the host about as long as the GPU takes to run them
(hundreds of launches per step), so on a slower host the GPU waits for launches in the middle of every
prefill chunk. Chunked prefill makes most prefill steps exactly ``max_prefill_tokens`` tokens long: the
runner captures the model's forward pass once for that token count and replays it for every such step of
at most :data:`MAX_REQUESTS` requests. Per-token inputs are copied into fixed buffers; the attention
backend plans the step as a batch padded with empty requests (see
:meth:`AttentionBackend.prepare_prefill_replay`). The graph computes logits for :data:`MAX_REQUESTS`
sampled positions (the real ones first); steps of any other size run eagerly as before.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from minisgl_core.attention.base import AttentionBackend
from minisgl_core.engine.batch import ForwardBatch, Phase
from minisgl_core.engine.cuda_graph import capture_graph
from minisgl_core.engine.plan import StepPlan
from minisgl_core.engine.sampler import SamplingBatch
from minisgl_core.sampling_params import SamplingParams

if TYPE_CHECKING:
    from minisgl_core.engine.engine import Engine

logger = logging.getLogger("minisgl.engine")

MAX_REQUESTS = 64
"""Requests a captured prefill step may hold; steps with more run eagerly."""


def dummy_prefill_plan(num_tokens: int, max_model_len: int, dummy_row: int, max_requests: int) -> StepPlan | None:
    """A prefill plan of ``num_tokens`` tokens on the dummy row (KV written to the reserved page 0), split
    into as few requests as ``max_model_len`` allows; ``None`` when that takes more than ``max_requests``."""
    per_request = max_model_len - 1
    n = -(-num_tokens // per_request)
    if n > max_requests:
        return None
    q_lens = [per_request] * (n - 1) + [num_tokens - per_request * (n - 1)]
    return StepPlan(
        phase=Phase.PREFILL, rows=[dummy_row] * n, q_lens=q_lens, kv_lens=list(q_lens),
        out_slots=torch.zeros(num_tokens, dtype=torch.int64), sample=list(range(n)),
        sampling=SamplingBatch.build([SamplingParams(temperature=0.0)] * n, list(range(n)), [dummy_row] * n),
        input_ids=torch.zeros(num_tokens, dtype=torch.int64),
    )  # fmt: skip


class PrefillGraphRunner:
    """Captures and replays ``model`` for prefill batches of exactly ``num_tokens`` tokens."""

    def __init__(
        self,
        model: Callable[[ForwardBatch], torch.Tensor],
        backend: AttentionBackend,
        num_tokens: int,
        max_requests: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.backend = backend
        self.num_tokens = num_tokens
        self.max_requests = max_requests
        self.input_ids = torch.zeros(num_tokens, dtype=torch.int64, device=device)
        self.positions = torch.zeros(num_tokens, dtype=torch.int64, device=device)
        self.out_slots = torch.zeros(num_tokens, dtype=torch.int64, device=device)
        self.sample_indices = torch.zeros(max_requests, dtype=torch.int64, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.logits: torch.Tensor | None = None
        self.replays = 0
        """Steps served by the graph (tests check that it ran)."""
        self.fallbacks = 0
        """Steps of the captured size the backend could not plan for the captured launch."""

    def can_run(self, plan: StepPlan) -> bool:
        return (
            self.graph is not None
            and plan.phase is Phase.PREFILL
            and plan.num_tokens == self.num_tokens
            and plan.batch_size <= self.max_requests
        )

    def _fixed(self, batch: ForwardBatch) -> ForwardBatch:
        """``batch`` over the fixed buffers (its per-token tensors copied in, sampled positions padded)."""
        self.input_ids.copy_(batch.input_ids)
        self.positions.copy_(batch.positions)
        self.out_slots.copy_(batch.out_slots)
        sampled = batch.sample_indices.numel()
        self.sample_indices[:sampled].copy_(batch.sample_indices)
        self.sample_indices[sampled:].zero_()
        return dataclasses.replace(
            batch,
            input_ids=self.input_ids,
            positions=self.positions,
            out_slots=self.out_slots,
            sample_indices=self.sample_indices,
            padded_batch_size=self.max_requests,
        )

    @torch.inference_mode()
    def capture(self, batch: ForwardBatch) -> None:
        """Capture the forward pass, using ``batch`` (a dummy of ``num_tokens`` tokens) as its inputs."""
        start = time.perf_counter()
        self.backend.init_prefill_graph(self.max_requests)
        fixed = self._fixed(batch)
        self.backend.prepare_prefill_capture(fixed)
        self.graph, self.logits = capture_graph(lambda: self.model(fixed), torch.cuda.Stream(self.input_ids.device))
        torch.cuda.synchronize(self.input_ids.device)
        logger.info(
            "captured the prefill graph (%d tokens, up to %d requests) in %.2f s",
            self.num_tokens, self.max_requests, time.perf_counter() - start,
        )  # fmt: skip

    def replay(self, batch: ForwardBatch) -> torch.Tensor | None:
        """Logits of ``batch``'s sampled positions, or ``None`` when the backend cannot plan ``batch`` for
        the captured launch (the caller then runs it eagerly)."""
        assert self.graph is not None and self.logits is not None, "capture first"
        fixed = self._fixed(batch)
        if not self.backend.prepare_prefill_replay(fixed):
            self.fallbacks += 1
            return None
        self.graph.replay()
        self.replays += 1
        return self.logits[: batch.sample_indices.numel()]


def build_prefill_graph(engine: Engine) -> PrefillGraphRunner | None:
    """Capture the prefill graph of ``engine`` (CUDA, at start-up, after its warm-up), or log why not."""
    backend = engine.prefill_attn
    if not backend.supports_prefill_graph:
        logger.info("prefill graph off: attention backend %s cannot be captured", type(backend).__name__)
        return None
    max_requests = min(MAX_REQUESTS, engine.config.max_running_requests)
    tokens = engine.config.max_prefill_tokens
    plan = dummy_prefill_plan(tokens, engine.max_model_len, engine.page_table.dummy_row, max_requests)
    if plan is None:
        logger.info("prefill graph off: %d tokens do not fit %d dummy requests", tokens, max_requests)
        return None
    runner = PrefillGraphRunner(engine.model, backend, tokens, max_requests, engine.device)
    batch = engine.make_batch(plan)
    batch.attn = backend
    runner.capture(batch)
    return runner
