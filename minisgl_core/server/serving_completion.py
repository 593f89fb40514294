"""``POST /v1/completions``.

``best_of`` larger than ``n`` samples ``best_of`` choices per prompt and returns the ``n`` with the highest
cumulative logprob (usage counts every sampled token: they were generated). ``echo`` puts the prompt's text
before each choice's text. A stream's first chunk per choice leaves at the engine's acceptance (empty
text, or the echoed prompt).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.server.asgi import SSEResponse
from minisgl_core.server.errors import APIError
from minisgl_core.server.logprob_format import completion_logprobs
from minisgl_core.server.messages import RequestOutput, TokenizeRequest
from minisgl_core.server.openai_serving import Choice, OpenAIServing, json_response
from minisgl_core.server.protocol_completion import CompletionRequest


def _check(body: CompletionRequest) -> None:
    if body.best_of is not None and body.best_of < body.num_choices:
        raise APIError(400, "'best_of' must be at least 'n'", "best_of")
    if body.streaming and body.num_samples != body.num_choices:
        raise APIError(400, "'best_of' larger than 'n' cannot be streamed", "best_of")
    if body.echo and body.logprobs is not None:
        raise APIError(400, "'echo' with 'logprobs' (prompt-token logprobs) is not implemented yet", "echo")


def _best(choices: list[Choice], per_prompt: int, n: int) -> list[Choice]:
    """Per prompt, the ``n`` of its ``per_prompt`` choices with the highest cumulative logprob."""
    if per_prompt == n:
        return choices
    out: list[Choice] = []
    for p in range(0, len(choices), per_prompt):
        group = sorted(choices[p : p + per_prompt], key=lambda c: c.cumulative_logprob, reverse=True)
        out += group[:n]
    return out


async def completions(s: OpenAIServing, body: CompletionRequest, raw: Request) -> Response:
    model = s.model_name(body.model)
    s.check_fields(body, "completion")
    _check(body)
    n, per_prompt = body.num_choices, body.num_samples
    ranking = per_prompt > n and body.logprobs is None  # logprobs needed to rank, not returned
    params = s.params(
        body, lambda: body.sampling_params(0 if ranking else body.logprobs, body.max_tokens, s.settings.defaults)
    )
    echo, default = bool(body.echo), s.settings.defaults.get("max_tokens", 16)
    reqs = []
    for p in body.prompts():
        text, ids = (p, None) if isinstance(p, str) else (None, p)
        choices = s.choices(params, per_prompt)
        reqs.append(
            TokenizeRequest([], choices, text, ids, max_tokens=body.max_tokens, default_max_tokens=default, echo=echo)
        )
    head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
    gen, first = await s.start(reqs, raw, body)
    if body.streaming:
        started = [False] * len(gen.rids)
        offsets = [0] * len(gen.rids)

        def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
            text = (out.prompt_text or "") + out.text
            if started[i] and not text and out.finish_reason is None and not out.logprobs:
                return None
            started[i] = True
            lps = None
            if body.logprobs is not None:
                lps = completion_logprobs(out.logprobs or [], offsets[i])
            offsets[i] += len(text)
            choice = {"index": i, "text": text, "logprobs": lps, "finish_reason": out.finish_reason}
            if out.finish_reason is not None:
                choice["matched_stop"] = out.matched_stop
            return {**head, "object": "text_completion", "choices": [choice]}

        usage_head = {**head, "object": "text_completion"} if body.include_usage else None
        return SSEResponse(s.stream(gen, first, chunk, usage_head, body.continuous_usage))
    choices, usage = await s.gather(gen, first)
    results = []
    for i, c in enumerate(_best(choices, per_prompt, n)):
        prompt = c.prompt_text or ""
        lps = completion_logprobs(c.logprobs, len(prompt)) if body.logprobs is not None else None
        results.append(
            {
                "index": i,
                "text": prompt + "".join(c.text),
                "logprobs": lps,
                "finish_reason": c.last.finish_reason if c.last else None,
                "matched_stop": c.last.matched_stop if c.last else None,
            }
        )
    return json_response({**head, "object": "text_completion", "choices": results, "usage": usage})
