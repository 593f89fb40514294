"""What a scheduler step hands back to its caller (the offline API, the server's engine worker): the new
tokens of each request, its finish reason and, when asked, logprobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minisgl_core.contracts.request import FinishReason, Req, TokenLogprob
from minisgl_core.engine import SampleResult, StepPlan
from minisgl_core.scheduling.prompt_scores import read_prompt_scores


@dataclass(slots=True)
class ReqUpdate:
    """New output of one request after a step."""

    req: Req
    new_token_ids: list[int]
    finish_reason: FinishReason | None
    logprobs: list[TokenLogprob] | None = None
    """One entry per new token when the request asked for ``logprobs``."""
    prompt_logprobs: list[TokenLogprob] | None = None
    """With the first token of a request that asked for ``prompt_logprobs``: prompt tokens 1.. scored."""


def token_logprobs(result: SampleResult, i: int, top: int) -> list[TokenLogprob]:
    """The logprob of request ``i``'s sampled token and its ``top`` alternatives, from a step's result."""
    assert result.logprobs is not None
    alternatives: list[tuple[int, float]] = []
    if top > 0 and result.top_ids is not None and result.top_logprobs is not None:
        alternatives = list(zip(result.top_ids[i, :top].tolist(), result.top_logprobs[i, :top].tolist()))
    return [TokenLogprob(int(result.tokens[i]), float(result.logprobs[i]), alternatives)]


def read_tokens(
    sched: Any, sampled: list[Req], result: SampleResult, plan: StepPlan, reqs: list[Req]
) -> list[ReqUpdate]:
    """Append one step's tokens to its sampled requests (``result`` on the host), advance their grammars and
    end those that stop (``sched.finish``); requests finished while the step was in flight are skipped.
    Prompt tokens the step scored go to their requests first (``read_prompt_scores``)."""
    if result.prompt is not None:
        read_prompt_scores(plan, reqs, result.prompt)
    tokens = result.tokens.tolist()
    updates = []
    for i, (req, token) in enumerate(zip(sampled, tokens)):
        if req.finished:  # finished (or aborted) while this step was in flight
            continue
        req.output_ids.append(token)
        reason = req.check_stop(token)
        if req.grammar is not None:
            if not req.grammar.accept(token):
                reason = FinishReason.GRAMMAR
            elif reason is None and req.grammar.is_terminated():
                reason = FinishReason.STOP
        if reason is not None:
            sched.finish(req, reason)
        logprobs = token_logprobs(result, i, req.params.logprobs) if req.params.logprobs is not None else None
        prompt = req.prompt_logprobs if req.params.prompt_logprobs is not None and len(req.output_ids) == 1 else None
        updates.append(ReqUpdate(req, [token], reason, logprobs, prompt))
    return updates
