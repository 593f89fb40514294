"""Which prompt tokens a prefill step scores (``prompt_logprobs``), and handing the scores to their requests.

A request that asks for prompt logprobs is prefilled from its first token (``reusable_ids`` skips the
prefix cache for it); each chunk scores the prompt tokens after its positions, up to the last prompt token
(the last position's logits are sampled as usual). A request retracted before its first token is scored
again from the start; one retracted later keeps the scores it already returned.
"""

from __future__ import annotations

import torch

from minisgl_core.contracts.request import Req, TokenLogprob
from minisgl_core.engine import StepPlan
from minisgl_core.engine.prompt_logprobs import PromptLogprobs


class PromptScores:
    """Collects, while a prefill step is planned, the rows it scores."""

    def __init__(self) -> None:
        self.wanted: list[tuple[int, int]] = []
        self.targets: list[int] = []
        self.top = 0

    def add(self, req: Req, index: int, start: int, n: int) -> None:
        """``req`` (batch index ``index``) computes positions ``[start, start + n)`` in this step."""
        k = req.params.prompt_logprobs
        if k is None or req.output_ids:
            return
        count = min(n, len(req.prompt_ids) - 1 - start)
        if count <= 0:
            return
        if start == 0:  # a request retracted before its first token starts over (its results were read)
            req.prompt_logprobs.clear()
        self.wanted.append((index, count))
        self.targets += req.prompt_ids[start + 1 : start + 1 + count]
        self.top = max(self.top, k)

    def into(self, plan: StepPlan) -> None:
        if self.wanted:
            plan.prompt_logprobs, plan.prompt_top = self.wanted, self.top
            plan.prompt_targets = torch.tensor(self.targets, dtype=torch.int64)


def read_prompt_scores(plan: StepPlan, reqs: list[Req], scores: PromptLogprobs) -> None:
    """Append a step's prompt-token scores (on the host) to their requests' ``prompt_logprobs``."""
    assert plan.prompt_targets is not None
    targets = plan.prompt_targets.tolist()
    values, ranks = scores.logprobs.tolist(), scores.ranks.tolist()
    top_ids = scores.top_ids.tolist() if scores.top_ids is not None else None
    top_lps = scores.top_logprobs.tolist() if scores.top_logprobs is not None else None
    row = 0
    for i, count in plan.prompt_logprobs:
        req = reqs[i]
        k = req.params.prompt_logprobs or 0
        for r in range(row, row + count):
            top = list(zip(top_ids[r][:k], top_lps[r][:k])) if top_ids and top_lps and k else []
            req.prompt_logprobs.append(TokenLogprob(targets[r], values[r], top, ranks[r]))
        row += count
