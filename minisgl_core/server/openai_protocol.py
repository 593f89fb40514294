"""Shared request types of the HTTP API (pydantic), validated strictly: wrong types are errors, not coerced.

Ranges mirror :class:`minisgl_core.contracts.sampling.SamplingParams`; the OpenAPI schema at ``/openapi.json``
is generated from these models. Every field the OpenAI API allows to be ``null`` is accepted as ``null`` and
means its default. Fields a model does not declare are judged by :mod:`minisgl_core.server.field_policy`
(refused with 400 naming them, or accepted as metadata); the endpoint bodies are in ``protocol_*.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.structured_outputs import StructuredFields

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
INT32_MAX = 2**31 - 1
TokenId = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]
Count = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]
Seed = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
MAX_CHOICES = 64
Choices = Annotated[int, Strict(), Field(ge=1, le=MAX_CHOICES)]
NonEmpty = Annotated[str, Strict(), Field(min_length=1)]
StopRegex = NonEmpty | list[NonEmpty]


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` (a last chunk with usage), ``continuous_usage_stats`` (vLLM:
    usage on every chunk)."""

    model_config = ConfigDict(extra="allow")

    include_usage: Bool | None = None
    continuous_usage_stats: Bool | None = None


class OpenBody(BaseModel):
    """A request body whose undeclared fields are kept (in ``model_extra``) for the field policy to judge."""

    model_config = ConfigDict(extra="allow")

    def extra_fields(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class SamplingFields(OpenBody, StructuredFields):
    """Sampling settings shared by chat and text completions (OpenAI names plus vLLM extensions)."""

    model: Str | None = None
    max_tokens: Count | None = None
    temperature: Annotated[float, Strict(), Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Strict(), Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Strict(), Field(ge=-1, le=INT32_MAX)] | None = None
    min_p: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] | None = None
    seed: Seed | None = None
    stop: Annotated[str, Strict(), Field(min_length=1)] | list[Annotated[str, Field(min_length=1)]] | None = None
    stop_token_ids: list[TokenId] | None = None
    stop_regex: StopRegex | None = None
    ignore_eos: Bool | None = None
    skip_special_tokens: Bool | None = None
    presence_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] | None = None
    repetition_penalty: Annotated[float, Strict(), Field(gt=0.0, le=10.0)] | None = None
    logit_bias: dict[str, Annotated[float, Strict(), Field(ge=-100.0, le=100.0)]] | None = None
    min_tokens: Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)] | None = None
    n: Choices | None = None
    stream: Bool | None = None
    stream_options: StreamOptions | None = None
    user: Str | None = None

    def sampling_params(
        self, logprobs: int | None, max_tokens: int | None = None, defaults: Mapping[str, Any] | None = None
    ) -> SamplingParams:
        """The engine's settings for this request (the tokenizer worker sets ``max_tokens`` once it knows the
        prompt's length; ``max_tokens`` here only bounds ``min_tokens``); fields the request leaves out take
        ``defaults`` (the model's generation config), then SamplingParams'."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        d = defaults or {}
        return SamplingParams(
            max_tokens=INT32_MAX if max_tokens is None else max_tokens,
            logit_bias=self.logit_bias or None,
            min_tokens=self.min_tokens or 0,
            temperature=d.get("temperature", 1.0) if self.temperature is None else self.temperature,
            top_p=d.get("top_p", 1.0) if self.top_p is None else self.top_p,
            top_k=d.get("top_k", -1) if self.top_k is None else self.top_k,
            min_p=d.get("min_p", 0.0) if self.min_p is None else self.min_p,
            seed=self.seed,
            stop=stop,
            stop_token_ids=list(self.stop_token_ids or []),
            stop_regex=self.stop_regex or [],
            ignore_eos=bool(self.ignore_eos),
            skip_special_tokens=self.skip_special_tokens is not False,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=d.get("repetition_penalty", 1.0)
            if self.repetition_penalty is None
            else self.repetition_penalty,
            logprobs=logprobs,
            **self.constraint_kwargs(),
        )

    @property
    def num_choices(self) -> int:
        return self.n or 1

    @property
    def streaming(self) -> bool:
        return bool(self.stream)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    @property
    def continuous_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.continuous_usage_stats)


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer (OpenAI's shape)."""

    error: ErrorDetail
