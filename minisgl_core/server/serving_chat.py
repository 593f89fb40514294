"""``POST /v1/chat/completions``.

Streaming: the first chunk of every choice carries ``role`` and leaves at the engine's acceptance; later
chunks carry text, and the logprobs of tokens that end in the middle of a UTF-8 character wait for the
chunk whose text completes it, so no chunk has an empty ``delta``. Text goes through the choice's reasoning and
tool-call parsers (``chat_stream.py``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from minisgl_core.server.asgi import SSEResponse
from minisgl_core.server.chat_stream import merge_delta, message
from minisgl_core.server.errors import APIError
from minisgl_core.server.logprob_format import chat_logprobs, vllm_prompt_logprobs
from minisgl_core.server.messages import RequestOutput, TokenizeRequest, TokenLogprobOut
from minisgl_core.server.openai_serving import Choice, OpenAIServing, json_response
from minisgl_core.server.protocol_chat import ChatCompletionRequest


async def chat_completions(s: OpenAIServing, body: ChatCompletionRequest, raw: Request) -> Response:
    model = s.model_name(body.model)
    s.check_fields(body, "chat")
    defaults = s.settings.defaults
    params = s.params(body, lambda: body.sampling_params(body.num_logprobs, body.requested_max_tokens, defaults))
    if body.prompt_logprobs is not None and body.streaming:
        raise APIError(400, "'prompt_logprobs' is not available when streaming a chat", "prompt_logprobs")
    params.prompt_logprobs = body.prompt_logprobs
    params = s.settings.constrain(body, params)  # tool_choice required / named: a JSON Schema from the tools
    n = body.num_choices
    outputs = [s.settings.output(body) for _ in range(n)]  # reasoning and tool-call parsers
    req = TokenizeRequest(
        [], s.choices(params, n), messages=[m.as_template_input() for m in body.messages],
        max_tokens=body.requested_max_tokens, chat=body.template_options(),
        default_max_tokens=defaults.get("max_tokens"),
    )  # fmt: skip
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model}
    gen, first = await s.start([req], raw, body)
    want_logprobs = bool(body.logprobs)
    if body.streaming:
        started = [False] * n
        pending: list[list[TokenLogprobOut]] = [[] for _ in range(n)]

        def chunk(i: int, out: RequestOutput) -> dict[str, Any] | None:
            pending[i] += out.logprobs or []
            delta = outputs[i].feed(out.text)
            if out.finish_reason is not None:
                merge_delta(delta, outputs[i].finish())
            if started[i] and not delta and out.finish_reason is None:
                return None  # nothing to show yet (part of a UTF-8 character, a parser's lookahead)
            if not started[i]:
                started[i] = True
                delta = {"role": "assistant", "content": "", **delta}
            elif not delta:  # the last chunk, with nothing left to say
                delta = {"content": ""}
            lps = None
            if want_logprobs:
                lps = {"content": chat_logprobs(pending[i])}
                pending[i] = []
            reason = outputs[i].finish_reason(out.finish_reason)
            choice = {"index": i, "delta": delta, "logprobs": lps, "finish_reason": reason}
            if out.finish_reason is not None:
                choice["matched_stop"] = out.matched_stop
            return {**head, "object": "chat.completion.chunk", "choices": [choice]}

        usage_head = {**head, "object": "chat.completion.chunk"} if body.include_usage else None
        return SSEResponse(s.stream(gen, first, chunk, usage_head, body.continuous_usage))
    choices, usage = await s.gather(gen, first)
    return json_response(
        {
            **head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": i,
                    "message": message(outputs[i], "".join(c.text)),
                    "logprobs": {"content": chat_logprobs(c.logprobs)} if want_logprobs else None,
                    "finish_reason": outputs[i].finish_reason(c.last.finish_reason if c.last else None),
                    "matched_stop": c.last.matched_stop if c.last else None,
                }
                for i, c in enumerate(choices)
            ],
            "usage": usage,
            **(
                {"prompt_logprobs": _prompt_logprobs(choices, body.prompt_logprobs)}
                if body.prompt_logprobs is not None
                else {}
            ),
        }
    )


def _prompt_logprobs(choices: list[Choice], top: int) -> list[dict[str, Any] | None] | None:
    """vLLM's top-level ``prompt_logprobs`` of a chat answer (the choices share the prompt)."""
    lps = next((c.prompt_logprobs for c in choices if c.prompt_logprobs is not None), None)
    return None if lps is None else vllm_prompt_logprobs(lps, top)
