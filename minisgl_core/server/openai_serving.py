"""What every generation endpoint shares: field checks, submitting, gathering a whole answer, streaming.

Each handler validates, submits a :class:`Generation` and waits for its first output - the engine's
acceptance of every request, sent before their first step runs - *before* answering, so every rejection
(prompt too long, workers gone) is a proper HTTP error even when streaming, while a stream's headers and
first event leave as soon as the engine accepted the request (a client's clock then measures the time to
the first token honestly). Leaving a handler or a stream in any way closes the generation, which aborts
whatever still runs. The endpoints themselves are in ``serving_chat.py``, ``serving_completion.py`` and
``serving_native.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from msgspec import json as mjson
from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.asgi import SSE_DONE, sse
from minisgl_core.server.chat_stream import ChatSettings
from minisgl_core.server.engine_client import EngineClient
from minisgl_core.server.errors import APIError, ClientGone
from minisgl_core.server.field_policy import check_fields, check_stream_options
from minisgl_core.server.generation import Generation
from minisgl_core.server.messages import RequestOutput, TokenizeRequest, TokenLogprobOut
from minisgl_core.server.openai_protocol import SamplingFields
from minisgl_core.server.request_checks import StopLimits, check_request
from minisgl_core.server.structured_outputs import request_param

Outputs = list[tuple[int, RequestOutput]]
ChunkFn = Callable[[int, RequestOutput], "dict[str, Any] | None"]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(mjson.encode(body), status_code=status, media_type="application/json")


class Choice:
    """One choice's output gathered for a non-streaming answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.token_ids: list[int] = []
        self.logprobs: list[TokenLogprobOut] = []
        self.prompt_text: str | None = None
        self.prompt_logprobs: list[TokenLogprobOut] | None = None
        self.last: RequestOutput | None = None

    def add(self, out: RequestOutput) -> None:
        self.text.append(out.text)
        self.token_ids += out.token_ids
        if out.logprobs:
            self.logprobs += out.logprobs
        if out.prompt_text is not None:
            self.prompt_text = out.prompt_text
        if out.prompt_logprobs is not None:
            self.prompt_logprobs = out.prompt_logprobs
        self.last = out

    @property
    def cumulative_logprob(self) -> float:
        return sum(lp.logprob for lp in self.logprobs)


def token_usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    """OpenAI's ``usage``; ``prompt_tokens_details.cached_tokens`` only when the prefix cache served some of
    the prompt (omitted otherwise, as vLLM does by default)."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return usage


def generation_usage(gen: Generation, last: dict[int, RequestOutput]) -> dict[str, Any]:
    """Token counts of a generation: each prompt once, every choice's completion."""
    prompt: dict[int, RequestOutput] = {}
    for i, out in sorted(last.items()):
        prompt.setdefault(gen.prompt_index[i], out)
    p = sum(o.prompt_tokens for o in prompt.values())
    c = sum(o.completion_tokens for o in last.values())
    return token_usage(p, c, sum(o.cached_tokens for o in prompt.values()))


class OpenAIServing:
    """Shared machinery of the handlers over one :class:`EngineClient`."""

    def __init__(
        self, client: EngineClient, model_names: list[str], limits: StopLimits, chat: ChatSettings | None = None
    ) -> None:
        self.client, self.model_names, self.limits = client, model_names, limits
        self.settings = chat or ChatSettings()
        """Sampling defaults (the model's generation config) and the chat output parsers."""

    def model_name(self, name: str | None) -> str:
        """The served model a request names (``None``: the served model, as vLLM and SGLang accept)."""
        if name is None:
            return self.model_names[0]
        if name not in self.model_names:
            raise APIError(
                404, f"The model '{name}' does not exist; served: {', '.join(self.model_names)}", "model",
                "model_not_found",
            )  # fmt: skip
        return name

    @staticmethod
    def check_fields(body: SamplingFields, endpoint: str) -> None:
        """The field policy (refuse what is not implemented) and the rules across fields."""
        check_fields(body.extra_fields(), endpoint)
        if body.stream_options is not None:
            if not body.streaming:
                raise APIError(400, "'stream_options' is only allowed when 'stream' is true", "stream_options")
            check_stream_options(dict(body.stream_options.model_extra or {}))

    @staticmethod
    def choices(params: SamplingParams, n: int) -> list[SamplingParams]:
        """``n`` copies; with a seed, choice ``i`` uses ``seed + i`` so the choices differ."""
        if params.seed is None:
            return [dataclasses.replace(params) for _ in range(n)]
        return [dataclasses.replace(params, seed=params.seed + i) for i in range(n)]

    def params(self, body: Any, build: Callable[[], SamplingParams]) -> SamplingParams:
        """``build()``'s settings, checked (``request_checks``) against the server's limits and the
        vocabulary; 400 naming the field otherwise."""
        try:
            params = build()
        except ValueError as exc:
            raise request_param(APIError(400, str(exc), str(exc).split(" ")[0]), body) from None
        assert self.client.info is not None
        check_request(body, params, self.limits, self.client.info.vocab_size)
        return params

    async def start(self, prompts: list[TokenizeRequest], raw: Request, body: Any = None) -> tuple[Generation, Outputs]:
        """Submit; returns once the engine accepted (or raises the rejection, naming ``body``'s field)."""
        gen = self.client.submit(prompts)
        gen.watch_disconnect(raw.receive)
        try:
            return gen, await gen.next()
        except APIError as exc:
            gen.close()
            raise request_param(exc, body) from None
        except BaseException:
            gen.close()
            raise

    async def gather(self, gen: Generation, outs: Outputs) -> tuple[list[Choice], dict[str, Any]]:
        choices = [Choice() for _ in gen.rids]
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
        return choices, generation_usage(gen, last)

    async def stream(
        self, gen: Generation, outs: Outputs, chunk: ChunkFn, usage_head: dict | None, continuous: bool = False
    ) -> AsyncIterator[bytes]:
        """SSE events: ``chunk(i, out)`` per output (``None``: nothing to send), then a usage chunk when
        ``usage_head`` is given, then ``[DONE]``; ``continuous`` puts the choice's usage on every chunk."""
        last: dict[int, RequestOutput] = {}
        try:
            while True:
                for i, out in outs:
                    last[i] = out
                    data = chunk(i, out)
                    if data is not None:
                        if continuous:
                            data["usage"] = token_usage(out.prompt_tokens, out.completion_tokens, out.cached_tokens)
                        yield sse(data)
                if gen.finished:
                    break
                outs = await gen.next()
            if usage_head is not None:
                yield sse({**usage_head, "choices": [], "usage": generation_usage(gen, last)})
            yield SSE_DONE
        except ClientGone:
            return
        except APIError as exc:
            yield sse(exc.body())
        finally:
            gen.close()
