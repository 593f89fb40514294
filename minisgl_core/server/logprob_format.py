"""Logprobs in the OpenAI shapes: chat (``{"content": [{token, logprob, bytes, top_logprobs}]}``) and
completions (``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``), plus SGLang's triples.

``bytes`` are each token's true bytes (a token holding part of a UTF-8 character reports that part, not
the bytes of U+FFFD). A prompt's first token has no logprob (nothing precedes it; NaN inside the server):
``None``, as in vLLM.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from minisgl_core.server.messages import TokenLogprobOut


def _entry(token: str, logprob: float, raw: bytes) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(raw)}


def chat_logprobs(lps: list[TokenLogprobOut]) -> list[dict[str, Any]]:
    out = []
    for lp in lps:
        raws = lp.top_raw or [t.encode() for _, t, _ in lp.top]
        top = [_entry(t, v, raw) for (_, t, v), raw in zip(lp.top, raws)]
        out.append({**_entry(lp.token, lp.logprob, lp.raw or lp.token.encode()), "top_logprobs": top})
    return out


def completion_logprobs(lps: list[TokenLogprobOut], offset: int) -> dict[str, Any]:
    """Completions' logprobs of ``lps`` (a NaN logprob marks a token without one: the prompt's first); the
    top dict holds the ``logprobs`` most likely tokens plus the sampled one (vLLM's rule, so ``logprobs=0``
    still names the sampled token)."""
    tokens, values, tops, offsets = [], [], [], []
    for lp in lps:
        offsets.append(offset)
        tokens.append(lp.token)
        offset += len(lp.token)
        if math.isnan(lp.logprob):
            values.append(None)
            tops.append(None)
            continue
        values.append(lp.logprob)
        top = {t: v for _, t, v in lp.top}
        top.setdefault(lp.token, lp.logprob)
        tops.append(top)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def sglang_logprobs(lps: list[TokenLogprobOut]) -> tuple[list, list]:
    """SGLang's ``[logprob, token id, None]`` triples and, per token, its top alternatives as triples."""
    values, tops = [], []
    for lp in lps:
        missing = math.isnan(lp.logprob)
        values.append([None if missing else lp.logprob, lp.token_id, None])
        tops.append(None if missing else [[v, i, None] for i, _, v in lp.top])
    return values, tops


def vllm_prompt_logprobs(lps: list[TokenLogprobOut], top: int) -> list[dict[str, Any] | None]:
    """vLLM's ``prompt_logprobs``: per prompt token ``None`` (the first) or ``{token id: {logprob, rank,
    decoded_token}}`` holding the token itself and its ``top`` most likely alternatives (ranks 1..top)."""
    out: list[dict[str, Any] | None] = []
    for lp in lps:
        if math.isnan(lp.logprob):
            out.append(None)
            continue
        entry = {str(i): {"logprob": v, "rank": r, "decoded_token": t} for r, (i, t, v) in enumerate(lp.top[:top], 1)}
        entry.setdefault(str(lp.token_id), {"logprob": lp.logprob, "rank": lp.rank, "decoded_token": lp.token})
        out.append(entry)
    return out


def with_top(lps: list[TokenLogprobOut], top: int) -> list[TokenLogprobOut]:
    """``lps`` keeping ``top`` alternatives each (prompt tokens are scored with the most any field asked)."""
    return [msgspec.structs.replace(lp, top=lp.top[:top], top_raw=lp.top_raw[:top]) for lp in lps]
