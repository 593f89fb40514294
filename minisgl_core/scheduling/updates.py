"""What a scheduler step hands back to its caller (the offline API, the server's engine worker): the new
tokens of each request, its finish reason and, when asked, logprobs."""

from __future__ import annotations

from dataclasses import dataclass

from minisgl_core.contracts.request import FinishReason, Req, TokenLogprob
from minisgl_core.engine import SampleResult


@dataclass(slots=True)
class ReqUpdate:
    """New output of one request after a step."""

    req: Req
    new_token_ids: list[int]
    finish_reason: FinishReason | None
    logprobs: list[TokenLogprob] | None = None
    """One entry per new token when the request asked for ``logprobs``."""


def token_logprobs(result: SampleResult, i: int, top: int) -> list[TokenLogprob]:
    """The logprob of request ``i``'s sampled token and its ``top`` alternatives, from a step's result."""
    assert result.logprobs is not None
    alternatives: list[tuple[int, float]] = []
    if top > 0 and result.top_ids is not None and result.top_logprobs is not None:
        alternatives = list(zip(result.top_ids[i, :top].tolist(), result.top_logprobs[i, :top].tolist()))
    return [TokenLogprob(int(result.tokens[i]), float(result.logprobs[i]), alternatives)]
