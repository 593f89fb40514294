"""Checks of a request body that its schema cannot express: limits set by :class:`ServerArgs` (stop strings and
patterns), the model's vocabulary, combinations of fields, and text that cannot travel as UTF-8.

Each check raises :class:`APIError` 400 naming the offending field (``param``), before anything is submitted,
so a rejected request leaves nothing registered.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import regex

from minisgl_core.config import ServerArgs
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.errors import APIError
from minisgl_core.server.protocol_chat import ChatCompletionRequest
from minisgl_core.server.protocol_completion import CompletionRequest
from minisgl_core.server.protocol_native import GenerateRequest


@dataclass(frozen=True)
class StopLimits:
    """How much stop matching one request may ask for (``--max-stop-strings`` ...)."""

    max_strings: int
    max_chars: int
    max_regex: int
    max_regex_chars: int

    @classmethod
    def from_args(cls, args: ServerArgs) -> StopLimits:
        return cls(args.max_stop_strings, args.max_stop_chars, args.max_stop_regex, args.max_stop_regex_chars)


def check_stops(params: SamplingParams, limits: StopLimits, prefix: str = "") -> None:
    """Count and total length of ``stop`` and ``stop_regex`` within ``limits``; each pattern compiles."""
    for name, values, most, chars, flag in (
        ("stop", params.stop, limits.max_strings, limits.max_chars, "max-stop"),
        ("stop_regex", params.stop_regex, limits.max_regex, limits.max_regex_chars, "max-stop-regex"),
    ):
        param = prefix + name
        if len(values) > most:
            raise APIError(400, f"{param}: at most {most} entries are accepted, got {len(values)} "
                           f"(server limit --{flag}{'-strings' if name == 'stop' else ''})", param)  # fmt: skip
        total = sum(len(v) for v in values)
        if total > chars:
            raise APIError(400, f"{param}: the entries may total at most {chars} characters, got {total} "
                           f"(server limit --{flag}-chars)", param)  # fmt: skip
        check_text(values, param)
    for i, pattern in enumerate(params.stop_regex):
        try:
            regex.compile(pattern)
        except regex.error as exc:
            raise APIError(400, f"{prefix}stop_regex[{i}] is not a valid regular expression: {exc}",
                           prefix + "stop_regex") from None  # fmt: skip


def check_token_ids(ids: Iterable[int], vocab_size: int, param: str) -> None:
    """Every id in ``[0, vocab_size)``."""
    for t in ids:
        if not 0 <= t < vocab_size:
            raise APIError(400, f"{param}: token id {t} is outside the vocabulary (size {vocab_size})", param)


def check_text(values: str | Iterable[str] | None, param: str) -> None:
    """Strings must be valid Unicode text: a lone surrogate (``"\\ud800"`` in JSON) cannot be encoded."""
    if values is None:
        return
    for value in [values] if isinstance(values, str) else values:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise APIError(
                400, f"{param} contains a lone surrogate (\\u{ord(value[exc.start]):04x} at character {exc.start}); "
                "strings must be valid Unicode", param,
            ) from None  # fmt: skip


def check_request(
    body: ChatCompletionRequest | CompletionRequest | GenerateRequest,
    params: SamplingParams,
    limits: StopLimits,
    vocab_size: int,
) -> None:
    """Every check above that applies to ``body`` (whose sampling settings are ``params``)."""
    prefix = "sampling_params." if isinstance(body, GenerateRequest) else ""
    check_stops(params, limits, prefix)
    check_token_ids(params.stop_token_ids, vocab_size, prefix + "stop_token_ids")
    check_token_ids(params.logit_bias or (), vocab_size, prefix + "logit_bias")
    if isinstance(body, ChatCompletionRequest):
        if body.top_logprobs is not None and not body.logprobs:
            raise APIError(400, "top_logprobs requires logprobs to be true", "top_logprobs")
        for i, m in enumerate(body.messages):
            param = f"messages.{i}.content"
            if m.content is None and m.role != "assistant":
                raise APIError(400, f"{param}: a {m.role} message needs content (a string or text parts)", param)
            check_text(m.content if isinstance(m.content, str) else [p.text for p in m.content or ()], param)
            check_text(m.name, f"messages.{i}.name")
    elif isinstance(body, CompletionRequest):
        check_text([p for p in body.prompts() if isinstance(p, str)], "prompt")
        for p in body.prompts():
            if not isinstance(p, str):
                check_token_ids(p, vocab_size, "prompt")
    else:
        check_text(body.text, "text")
