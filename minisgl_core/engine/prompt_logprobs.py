"""Logprobs of prompt tokens (vLLM's ``prompt_logprobs``, SGLang's ``logprob_start_len``), computed during
prefill: the forward returns logits at every position of the requests that asked for them, in addition to
the positions it samples, and the logits at position ``p`` score prompt token ``p + 1``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PromptLogprobs:
    """One step's prompt-token logprobs, rows in the order of ``StepPlan.prompt_logprobs``."""

    logprobs: torch.Tensor  # float32 [E]
    ranks: torch.Tensor  # int64 [E]: 1 + the number of tokens more likely than the prompt token
    top_ids: torch.Tensor | None = None  # int64 [E, K]
    top_logprobs: torch.Tensor | None = None  # float32 [E, K]

    def to_host(self, copy: object) -> PromptLogprobs:
        return PromptLogprobs(*(copy(t) for t in (self.logprobs, self.ranks, self.top_ids, self.top_logprobs)))  # type: ignore[operator]


def prompt_positions(q_lens: list[int], wanted: list[tuple[int, int]]) -> np.ndarray:
    """Flat token indices of the step whose logits are wanted: the first ``count`` tokens of request ``i``
    for each ``(i, count)``."""
    starts = np.concatenate([[0], np.cumsum(q_lens)])
    if not wanted:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(starts[i], starts[i] + n, dtype=np.int64) for i, n in wanted])


def score(logits: torch.Tensor, targets: torch.Tensor, top: int) -> PromptLogprobs:
    """``logits`` ``[E, vocab]`` at the wanted positions, ``targets`` the next prompt tokens ``[E]``."""
    lp = logits.float().log_softmax(dim=-1)
    chosen = lp.gather(1, targets[:, None])
    out = PromptLogprobs(chosen[:, 0], (lp > chosen).sum(dim=-1) + 1)
    if top > 0:
        out.top_logprobs, out.top_ids = lp.topk(top, dim=-1)
    return out
