"""The generation endpoints: ``/v1/chat/completions``, ``/v1/completions`` and the native ``/generate``.

Each handler validates, submits a :class:`Generation` and waits for its first output *before* answering,
so every rejection (prompt too long, workers gone) is a proper HTTP error even when streaming. Then it
either streams server-sent events or gathers the whole result. Leaving a handler or a stream in any way
closes the generation, which aborts whatever still runs.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from msgspec import json as mjson
from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.asgi import SSE_DONE, SSEResponse, sse
from minisgl_core.server.chat_stream import ChatSettings, chat_logprobs, merge_delta, message
from minisgl_core.server.engine_client import ClientGone, EngineClient, Generation
from minisgl_core.server.errors import APIError
from minisgl_core.server.messages import RequestOutput, TokenizeRequest, TokenLogprobOut
from minisgl_core.server.openai_protocol import ChatCompletionRequest, CompletionRequest, GenerateRequest
from minisgl_core.server.request_checks import StopLimits, check_request

Outputs = list[tuple[int, RequestOutput]]
ChunkFn = Callable[[int, RequestOutput], "dict[str, Any] | None"]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(mjson.encode(body), status_code=status, media_type="application/json")


class _Choice:
    """One choice's output gathered for a non-streaming answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: list[TokenLogprobOut] = []
        self.last: RequestOutput | None = None

    def add(self, out: RequestOutput) -> None:
        self.text.append(out.text)
        self.token_ids += out.token_ids
        if out.logprobs:
            self.logprobs += out.logprobs
        self.last = out


def _usage(gen: Generation, last: dict[int, RequestOutput]) -> dict[str, Any]:
    """Token counts: each prompt once, every choice's completion."""
    prompt: dict[int, RequestOutput] = {}
    for i, out in sorted(last.items()):
        prompt.setdefault(gen.prompt_index[i], out)
    p = sum(o.prompt_tokens for o in prompt.values())
    c = sum(o.completion_tokens for o in last.values())
    cached = sum(o.cached_tokens for o in prompt.values())
    return {
        "prompt_tokens": p,
        "completion_tokens": c,
        "total_tokens": p + c,
        "prompt_tokens_details": {"cached_tokens": cached},
    }


def completion_logprobs(lps: list[TokenLogprobOut], offset: int) -> dict[str, Any]:
    offsets = []
    for lp in lps:
        offsets.append(offset)
        offset += len(lp.token)
    return {
        "tokens": [lp.token for lp in lps],
        "token_logprobs": [lp.logprob for lp in lps],
        "top_logprobs": [{t: v for _, t, v in lp.top} for lp in lps],
        "text_offset": offsets,
    }


class OpenAIServing:
    """Request handlers over one :class:`EngineClient`."""

    def __init__(
        self, client: EngineClient, model_names: list[str], limits: StopLimits, chat: ChatSettings | None = None
    ) -> None:
        self.client, self.model_names, self.limits = client, model_names, limits
        self.settings = chat or ChatSettings()
        """Sampling defaults (the model's generation config) and the chat output parsers."""

    def _check_model(self, name: str) -> None:
        if name not in self.model_names:
            raise APIError(
                404, f"The model '{name}' does not exist; served: {', '.join(self.model_names)}", "model",
                "model_not_found",
            )  # fmt: skip

    @staticmethod
    def _choices(params: SamplingParams, n: int) -> list[SamplingParams]:
        """``n`` copies; with a seed, choice ``i`` uses ``seed + i`` so the choices differ."""
        if params.seed is None:
            return [dataclasses.replace(params) for _ in range(n)]
        return [dataclasses.replace(params, seed=params.seed + i) for i in range(n)]

    async def _start(self, prompts: list[TokenizeRequest], raw: Request) -> tuple[Generation, Outputs]:
        gen = self.client.submit(prompts)
        gen.watch_disconnect(raw.receive)
        try:
            return gen, await gen.next()
        except BaseException:
            gen.close()
            raise

    def _params(self, body: ChatCompletionRequest | CompletionRequest | GenerateRequest,
                build: Callable[[], SamplingParams]) -> SamplingParams:  # fmt: skip
        try:
            params = build()
        except ValueError as exc:
            raise APIError(400, str(exc), str(exc).split(" ")[0]) from None
        assert self.client.info is not None
        check_request(body, params, self.limits, self.client.info.vocab_size)
        return params

    # -- chat -------------------------------------------------------------------------------------------

    async def chat(self, body: ChatCompletionRequest, raw: Request) -> Response:
        self._check_model(body.model)
        params = self._params(body, lambda: body.sampling_params(body.num_logprobs, self.settings.defaults))
        outputs = [self.settings.output(body) for _ in range(body.n)]  # reasoning and tool-call parsers
        req = TokenizeRequest(
            [], self._choices(params, body.n), messages=[m.as_template_input() for m in body.messages],
            max_tokens=body.requested_max_tokens, chat=body.template_options(),
            default_max_tokens=self.settings.defaults.get("max_tokens"),
        )  # fmt: skip
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        gen, first = await self._start([req], raw)
        if body.stream:
            started = [False] * body.n

            def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
                delta = outputs[i].feed(out.text)
                if out.finish_reason is not None:
                    merge_delta(delta, outputs[i].finish())
                if not started[i]:
                    started[i] = True
                    delta = {"role": "assistant", "content": "", **delta}
                elif not delta and out.finish_reason is None and not out.logprobs:
                    return None
                lps = {"content": chat_logprobs(out.logprobs)} if out.logprobs else None
                reason = outputs[i].finish_reason(out.finish_reason)
                choice = {"index": i, "delta": delta, "logprobs": lps, "finish_reason": reason}
                if out.finish_reason is not None:
                    choice["matched_stop"] = out.matched_stop
                return {**head, "object": "chat.completion.chunk", "choices": [choice]}

            usage_head = {**head, "object": "chat.completion.chunk"}
            return SSEResponse(self._stream(gen, first, chunk, usage_head if body.include_usage else None))
        choices, usage = await self._gather(gen, first)
        answers = [
            {
                "index": i,
                "message": message(outputs[i], "".join(c.text)),
                "logprobs": {"content": chat_logprobs(c.logprobs)} if body.logprobs else None,
                "finish_reason": outputs[i].finish_reason(c.last.finish_reason if c.last else None),
                "matched_stop": c.last.matched_stop if c.last else None,
            }
            for i, c in enumerate(choices)
        ]
        return json_response({**head, "object": "chat.completion", "choices": answers, "usage": usage})

    # -- completions ------------------------------------------------------------------------------------

    async def completions(self, body: CompletionRequest, raw: Request) -> Response:
        self._check_model(body.model)
        params = self._params(body, lambda: body.sampling_params(body.logprobs, self.settings.defaults))
        default = self.settings.defaults.get("max_tokens", 16)
        reqs = []
        for p in body.prompts():
            text, ids = (p, None) if isinstance(p, str) else (None, p)
            choices = self._choices(params, body.n)
            reqs.append(TokenizeRequest([], choices, text, ids, max_tokens=body.max_tokens, default_max_tokens=default))
        head = {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        gen, first = await self._start(reqs, raw)
        if body.stream:
            offsets = [0] * len(gen.rids)

            def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
                if not out.text and out.finish_reason is None and not out.logprobs:
                    return None
                lps = None
                if out.logprobs:
                    lps = completion_logprobs(out.logprobs, offsets[i])
                offsets[i] += len(out.text)
                choice = {"index": i, "text": out.text, "logprobs": lps, "finish_reason": out.finish_reason}
                if out.finish_reason is not None:
                    choice["matched_stop"] = out.matched_stop
                return {**head, "object": "text_completion", "choices": [choice]}

            usage_head = {**head, "object": "text_completion"}
            return SSEResponse(self._stream(gen, first, chunk, usage_head if body.include_usage else None))
        choices, usage = await self._gather(gen, first)
        return json_response(
            {
                **head,
                "object": "text_completion",
                "choices": [
                    {
                        "index": i,
                        "text": "".join(c.text),
                        "logprobs": completion_logprobs(c.logprobs, 0) if body.logprobs is not None else None,
                        "finish_reason": c.last.finish_reason if c.last else None,
                        "matched_stop": c.last.matched_stop if c.last else None,
                    }
                    for i, c in enumerate(choices)
                ],
                "usage": usage,
            }
        )

    # -- native -----------------------------------------------------------------------------------------

    async def generate(self, body: GenerateRequest, raw: Request) -> Response:
        if (body.text is None) == (body.input_ids is None):
            raise APIError(400, "give exactly one of 'text' and 'input_ids'", "text")
        sp = body.sampling_params
        params = self._params(body, lambda: sp.sampling_params(self.settings.defaults))
        default = self.settings.defaults.get("max_tokens")
        req = TokenizeRequest(
            [], [params], body.text, body.input_ids, max_tokens=sp.max_new_tokens, default_max_tokens=default
        )
        gen, first = await self._start([req], raw)

        def meta(out: RequestOutput) -> dict[str, Any]:
            return {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "cached_tokens": out.cached_tokens,
                "finish_reason": out.finish_reason,
                "matched_stop": out.matched_stop,
            }

        if body.stream:

            def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
                return {"text": out.text, "output_ids": out.token_ids, "meta_info": meta(out)}

            return SSEResponse(self._stream(gen, first, chunk, None))
        choices, _ = await self._gather(gen, first)
        c = choices[0]
        assert c.last is not None
        return json_response({"text": "".join(c.text), "output_ids": c.token_ids, "meta_info": meta(c.last)})

    # -- shared -----------------------------------------------------------------------------------------

    async def _gather(self, gen: Generation, outs: Outputs) -> tuple[list[_Choice], dict[str, Any]]:
        choices = [_Choice() for _ in gen.rids]
        try:
            while True:
                for i, out in outs:
                    choices[i].add(out)
                if gen.finished:
                    break
                outs = await gen.next()
        except ClientGone:
            raise APIError(499, "client disconnected") from None
        finally:
            gen.close()
        last = {i: c.last for i, c in enumerate(choices) if c.last is not None}
        return choices, _usage(gen, last)

    async def _stream(
        self, gen: Generation, outs: Outputs, chunk: ChunkFn, usage_head: dict | None
    ) -> AsyncIterator[bytes]:
        last: dict[int, RequestOutput] = {}
        try:
            while True:
                for i, out in outs:
                    last[i] = out
                    data = chunk(i, out)
                    if data is not None:
                        yield sse(data)
                if gen.finished:
                    break
                outs = await gen.next()
            if usage_head is not None:
                yield sse({**usage_head, "choices": [], "usage": _usage(gen, last)})
            yield SSE_DONE
        except ClientGone:
            return
        except APIError as exc:
            yield sse(exc.body())
        finally:
            gen.close()
