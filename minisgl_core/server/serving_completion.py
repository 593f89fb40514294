"""``POST /v1/completions``.

``best_of`` larger than ``n`` samples ``best_of`` choices per prompt and returns the ``n`` with the highest
cumulative logprob (usage counts every sampled token: they were generated). ``echo`` puts the prompt's text
before each choice's text (with its tokens' logprobs when ``logprobs`` is set: the prompt is then scored by
the engine, and a stream sends the echo with the first token); ``prompt_logprobs`` (vLLM) adds each prompt
token's logprob and top alternatives. A stream's first chunk per choice leaves at the engine's acceptance (empty
text, or the echoed prompt).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.asgi import SSEResponse
from minisgl_core.server.errors import APIError
from minisgl_core.server.logprob_format import completion_logprobs, vllm_prompt_logprobs, with_top
from minisgl_core.server.messages import RequestOutput, TokenizeRequest, TokenLogprobOut
from minisgl_core.server.openai_serving import Choice, OpenAIServing, json_response
from minisgl_core.server.protocol_completion import CompletionRequest


def _check(body: CompletionRequest) -> None:
    if body.best_of is not None and body.best_of < body.num_choices:
        raise APIError(400, "'best_of' must be at least 'n'", "best_of")
    if body.streaming and body.num_samples != body.num_choices:
        raise APIError(400, "'best_of' larger than 'n' cannot be streamed", "best_of")


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

    def build() -> SamplingParams:
        params = body.sampling_params(0 if ranking else body.logprobs, body.max_tokens, s.settings.defaults)
        params.prompt_logprobs = body.prompt_scores
        return params

    params = s.params(body, build)
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
    scored_echo = echo and body.logprobs is not None  # the echo waits for its logprobs (with the first token)

    def prompt_part(prompt_text: str | None, prompt_lps: list[TokenLogprobOut] | None) -> tuple[str, list]:
        """The echoed text and its tokens' logprobs (with ``logprobs`` alternatives) for a choice."""
        if not scored_echo:
            return prompt_text or "", []
        return (prompt_text or "", with_top(prompt_lps, body.logprobs or 0)) if prompt_lps is not None else ("", [])

    def extras(choice: dict[str, Any], prompt_lps: list[TokenLogprobOut] | None) -> dict[str, Any]:
        if body.prompt_logprobs is not None and prompt_lps is not None:
            choice["prompt_logprobs"] = vllm_prompt_logprobs(prompt_lps, body.prompt_logprobs)
        return choice

    if body.streaming:
        started = [False] * len(gen.rids)
        offsets = [0] * len(gen.rids)
        echoes: list[str | None] = [None] * len(gen.rids)

        def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
            echoes[i] = out.prompt_text if out.prompt_text is not None else echoes[i]
            shown, prompt_lps = prompt_part(echoes[i] if out.prompt_logprobs or not scored_echo else None,
                                            out.prompt_logprobs)  # fmt: skip
            if shown:
                echoes[i] = None
            text = shown + out.text
            if started[i] and not text and out.finish_reason is None and not out.logprobs:
                return None
            started[i] = True
            lps = None
            if body.logprobs is not None:
                lps = completion_logprobs(prompt_lps + (out.logprobs or []), offsets[i])
            offsets[i] += len(text)
            choice = {"index": i, "text": text, "logprobs": lps, "finish_reason": out.finish_reason}
            if out.finish_reason is not None:
                choice["matched_stop"] = out.matched_stop
            return {**head, "object": "text_completion", "choices": [extras(choice, out.prompt_logprobs)]}

        usage_head = {**head, "object": "text_completion"} if body.include_usage else None
        return SSEResponse(s.stream(gen, first, chunk, usage_head, body.continuous_usage))
    choices, usage = await s.gather(gen, first)
    results = []
    for i, c in enumerate(_best(choices, per_prompt, n)):
        shown, prompt_lps = prompt_part(c.prompt_text, c.prompt_logprobs)
        lps = completion_logprobs(prompt_lps + c.logprobs, 0) if body.logprobs is not None else None
        choice = {
            "index": i,
            "text": shown + "".join(c.text),
            "logprobs": lps,
            "finish_reason": c.last.finish_reason if c.last else None,
            "matched_stop": c.last.matched_stop if c.last else None,
        }
        results.append(extras(choice, c.prompt_logprobs))
    return json_response({**head, "object": "text_completion", "choices": results, "usage": usage})
