"""What the scheduler asks the engine to run in one step: host data only, small enough to broadcast to
every tensor-parallel rank."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from minisgl_core.contracts.batch import Phase
from minisgl_core.contracts.request import Req
from minisgl_core.engine.sampler import SamplingBatch


@dataclass
class StepPlan:
    """One step for ``len(rows)`` requests.

    Request ``i`` (page-table row ``rows[i]``) computes ``q_lens[i]`` new tokens ending at position
    ``kv_lens[i] - 1``; their KV goes to ``out_slots`` (flattened, request after request). Prefill steps
    carry the token ids; decode steps read each request's last sampled token on the device. ``sample``
    lists the batch indices of requests whose last token's logits are sampled, in the same order as the
    rows of ``sampling``.
    """

    phase: Phase
    rows: list[int]
    q_lens: list[int]
    kv_lens: list[int]
    out_slots: torch.Tensor  # int64 [sum(q_lens)]
    sample: list[int]
    sampling: SamplingBatch
    input_ids: torch.Tensor | None = None  # int64 [sum(q_lens)], prefill only
    num_device_inputs: int = 0
    """Prefill steps: the last ``num_device_inputs`` requests decode (one token each) and take their input
    token from the device like a decode step (a mixed step); their ``input_ids`` entries are placeholders."""
    table_writes: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    """``(row, slots)``: page-table installs queued since the last plan (``PageTable.take_writes``), written
    to the device copy first."""
    penalty_init: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    """``(row, prompt ids, output ids)`` of admitted requests with penalties: their statistics restart."""
    prompt_logprobs: list[tuple[int, int]] = field(default_factory=list)
    """``(i, count)``: request ``i`` scores the prompt tokens after its first ``count`` tokens of this step
    (``prompt_targets``, concatenated, holds those tokens; ``prompt_top`` alternatives are kept)."""
    prompt_targets: torch.Tensor | None = None
    prompt_top: int = 0

    @classmethod
    def for_requests(
        cls, phase: Phase, reqs: list[Req], q_lens: list[int], slots: torch.Tensor, sample: list[int],
        table_writes: list[tuple[int, torch.Tensor]],
    ) -> StepPlan:  # fmt: skip
        """The plan of a step over ``reqs`` sampling ``reqs[i]`` for ``i`` in ``sample`` (each one's
        ``num_sampled`` advances: the step is scheduled)."""
        sampled = [reqs[i] for i in sample]
        params, index = [r.params for r in sampled], [r.num_sampled for r in sampled]
        sampling = SamplingBatch.build(params, index, [r.row for r in sampled])
        if sampling.any_bias:
            sampling.add_bias(params, index, [r.stop_ids for r in sampled])
        for r in sampled:
            r.num_sampled += 1
        rows = [r.row for r in reqs]
        kv_lens = [r.kv_len for r in reqs]
        return cls(phase, rows, q_lens, kv_lens, slots, sample, sampling, table_writes=table_writes)  # type: ignore[arg-type]

    @property
    def batch_size(self) -> int:
        return len(self.rows)

    @property
    def num_tokens(self) -> int:
        return int(self.out_slots.numel())
