"""The native endpoints: ``POST /generate`` (SGLang's shape, batch form included), ``POST /tokenize`` and
``POST /detokenize`` (vLLM's shapes).

``/generate`` answers one object for one prompt with ``n == 1``, else a list in prompt-major order (every
prompt's ``n`` choices together), as SGLang does. ``return_logprob`` adds SGLang's
``output_token_logprobs`` (``[logprob, token id, None]``) and, with ``top_logprobs_num``,
``output_top_logprobs`` to ``meta_info``; with ``logprob_start_len`` >= 0 also ``input_token_logprobs`` and
``input_top_logprobs`` of the prompt tokens from that position (the first prompt token's logprob is null).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.server.asgi import SSEResponse
from minisgl_core.server.errors import APIError
from minisgl_core.server.logprob_format import sglang_logprobs
from minisgl_core.server.messages import RequestOutput, TextQuery, TokenizeRequest, TokenLogprobOut
from minisgl_core.server.openai_serving import OpenAIServing, json_response
from minisgl_core.server.protocol_native import DetokenizeBody, GenerateRequest, TokenizeBody


def _requests(s: OpenAIServing, body: GenerateRequest) -> list[TokenizeRequest]:
    if (body.text is None) == (body.input_ids is None):
        raise APIError(400, "give exactly one of 'text' and 'input_ids'", "text")
    if body.logprob_start_len != -1 and not body.return_logprob:
        raise APIError(400, "'logprob_start_len' needs 'return_logprob'", "logprob_start_len")
    prompts = body.prompts()
    sps = body.sampling_params if isinstance(body.sampling_params, list) else [body.sampling_params] * len(prompts)
    if len(sps) != len(prompts):
        raise APIError(400, "'sampling_params' as a list needs one entry per prompt", "sampling_params")
    logprobs = body.top_logprobs_num if body.return_logprob else None
    defaults = s.settings.defaults
    prompt = logprobs if body.logprob_start_len >= 0 else None  # prompt tokens are scored too
    reqs = []
    for p, sp in zip(prompts, sps):
        params = s.params(body, lambda sp=sp: sp.sampling_params(logprobs, defaults, prompt))  # type: ignore[misc]
        text, ids = (p, None) if isinstance(p, str) else (None, p)
        reqs.append(
            TokenizeRequest(
                [],
                s.choices(params, sp.n),
                text,
                ids,
                max_tokens=sp.max_new_tokens,
                default_max_tokens=defaults.get("max_tokens"),
            )  # fmt: skip
        )
    return reqs


async def generate(s: OpenAIServing, body: GenerateRequest, raw: Request) -> Response:
    reqs = _requests(s, body)
    gen, first = await s.start(reqs, raw)

    def meta(
        out: RequestOutput, lps: list[TokenLogprobOut] | None, prompt: list[TokenLogprobOut] | None = None
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "id": out.rid,
            "prompt_tokens": out.prompt_tokens,
            "completion_tokens": out.completion_tokens,
            "cached_tokens": out.cached_tokens,
            "finish_reason": out.finish_reason,
            "matched_stop": out.matched_stop,
        }
        if body.return_logprob:
            values, tops = sglang_logprobs(lps or [])
            info["output_token_logprobs"] = values
            if body.top_logprobs_num:
                info["output_top_logprobs"] = tops
            if prompt is not None:
                values, tops = sglang_logprobs(prompt[body.logprob_start_len :])
                info["input_token_logprobs"] = values
                if body.top_logprobs_num:
                    info["input_top_logprobs"] = tops
        return info

    if body.stream:

        def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
            item = {
                "text": out.text,
                "output_ids": out.token_ids,
                "meta_info": meta(out, out.logprobs, out.prompt_logprobs),
            }
            return {"index": i, **item} if len(gen.rids) > 1 else item

        return SSEResponse(s.stream(gen, first, chunk, None))
    choices, _ = await s.gather(gen, first)
    results = []
    for c in choices:
        assert c.last is not None
        info = meta(c.last, c.logprobs, c.prompt_logprobs)
        results.append({"text": "".join(c.text), "output_ids": c.token_ids, "meta_info": info})
    if not body.batched and len(results) == 1:
        return json_response(results[0])
    return json_response(results)


async def tokenize(s: OpenAIServing, body: TokenizeBody, max_model_len: int) -> Response:
    s.model_name(body.model)
    if (body.prompt is None) == (body.messages is None):
        raise APIError(400, "give exactly one of 'prompt' and 'messages'", "prompt")
    if body.messages is not None:
        messages = [m.as_template_input() for m in body.messages]
        query = TextQuery(0, messages=messages, token_strs=body.return_token_strs)
    else:
        add = body.add_special_tokens is not False
        query = TextQuery(0, text=body.prompt, add_special_tokens=add, token_strs=body.return_token_strs)
    answer = await s.client.text_query(query)
    if answer.error is not None:
        raise APIError(400, answer.error, "messages" if body.messages is not None else "prompt")
    out: dict[str, Any] = {"count": len(answer.token_ids), "max_model_len": max_model_len, "tokens": answer.token_ids}
    if body.return_token_strs:
        out["token_strs"] = answer.token_strs
    return json_response(out)


async def detokenize(s: OpenAIServing, body: DetokenizeBody) -> Response:
    s.model_name(body.model)
    answer = await s.client.text_query(TextQuery(0, token_ids=body.tokens))
    if answer.error is not None:
        raise APIError(400, answer.error, "tokens")
    return json_response({"prompt": answer.text})
