"""Request bodies of the HTTP API (pydantic), validated strictly: wrong types are errors, not coerced.

Ranges mirror :class:`minisgl_core.contracts.sampling.SamplingParams`; the OpenAPI schema at ``/openapi.json``
is generated from these models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.chat_protocol import ChatFields, ChatMessage

Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
INT32_MAX = 2**31 - 1
TokenId = Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)]
Count = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]
Seed = Annotated[int, Strict(), Field(ge=-(2**63), le=2**63 - 1)]
MAX_CHOICES = 64
NonEmpty = Annotated[str, Strict(), Field(min_length=1)]
StopRegex = NonEmpty | list[NonEmpty]


class StreamOptions(BaseModel):
    include_usage: Bool = False


class SamplingFields(BaseModel):
    """Sampling settings shared by chat and text completions (OpenAI names plus vLLM extensions)."""

    model_config = ConfigDict(extra="ignore")

    model: Str
    max_tokens: Count | None = None
    temperature: Annotated[float, Strict(), Field(ge=0.0, le=2.0)] | None = None
    top_p: Annotated[float, Strict(), Field(gt=0.0, le=1.0)] | None = None
    top_k: Annotated[int, Strict(), Field(ge=-1, le=INT32_MAX)] | None = None
    min_p: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] | None = None
    seed: Seed | None = None
    stop: Annotated[str, Strict(), Field(min_length=1)] | list[Annotated[str, Field(min_length=1)]] | None = None
    stop_token_ids: list[TokenId] | None = None
    stop_regex: StopRegex | None = None
    ignore_eos: Bool = False
    skip_special_tokens: Bool = True
    presence_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] | None = None
    frequency_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] | None = None
    repetition_penalty: Annotated[float, Strict(), Field(gt=0.0, le=10.0)] | None = None
    n: Annotated[int, Strict(), Field(ge=1, le=MAX_CHOICES)] = 1
    stream: Bool = False
    stream_options: StreamOptions | None = None
    user: Str | None = None

    def sampling_params(self, logprobs: int | None, defaults: Mapping[str, Any] | None = None) -> SamplingParams:
        """The engine's settings for this request (``max_tokens`` is set by the tokenizer worker); fields the
        request leaves out take ``defaults`` (the model's generation config), then SamplingParams'."""
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        d = defaults or {}
        return SamplingParams(
            temperature=d.get("temperature", 1.0) if self.temperature is None else self.temperature,
            top_p=d.get("top_p", 1.0) if self.top_p is None else self.top_p,
            top_k=d.get("top_k", -1) if self.top_k is None else self.top_k,
            min_p=d.get("min_p", 0.0) if self.min_p is None else self.min_p,
            seed=self.seed,
            stop=stop,
            stop_token_ids=list(self.stop_token_ids or []),
            stop_regex=self.stop_regex or [],
            ignore_eos=self.ignore_eos,
            skip_special_tokens=self.skip_special_tokens,
            presence_penalty=self.presence_penalty or 0.0,
            frequency_penalty=self.frequency_penalty or 0.0,
            repetition_penalty=d.get("repetition_penalty", 1.0)
            if self.repetition_penalty is None
            else self.repetition_penalty,
            logprobs=logprobs,
        )

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(SamplingFields, ChatFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Count | None = None
    logprobs: Bool = False
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        if not self.logprobs:
            return None
        return self.top_logprobs or 0


Prompt = (
    Annotated[str, Strict()]
    | Annotated[list[TokenId], Field(min_length=1)]
    | Annotated[list[Annotated[str, Strict()]], Field(min_length=1, max_length=MAX_CHOICES)]
    | Annotated[list[Annotated[list[TokenId], Field(min_length=1)]], Field(min_length=1, max_length=MAX_CHOICES)]
)


class CompletionRequest(SamplingFields):
    prompt: Prompt
    logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None

    def prompts(self) -> list[str | list[int]]:
        """The prompt(s) as a list: one text or one token-id list per prompt."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and isinstance(p[0], int):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


class GenerateSampling(BaseModel):
    """``sampling_params`` of the native ``/generate`` endpoint (SGLang-style names)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: Count | None = None
    temperature: Annotated[float, Strict(), Field(ge=0.0)] = 1.0
    top_p: Annotated[float, Strict(), Field(gt=0.0, le=1.0)] = 1.0
    top_k: Annotated[int, Strict(), Field(ge=-1, le=INT32_MAX)] = -1
    min_p: Annotated[float, Strict(), Field(ge=0.0, le=1.0)] = 0.0
    seed: Seed | None = None
    stop: list[Annotated[str, Field(min_length=1)]] = []
    stop_token_ids: list[TokenId] = []
    stop_regex: StopRegex = []
    ignore_eos: Bool = False
    skip_special_tokens: Bool = True
    presence_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] = 0.0
    frequency_penalty: Annotated[float, Strict(), Field(ge=-2.0, le=2.0)] = 0.0
    repetition_penalty: Annotated[float, Strict(), Field(gt=0.0, le=10.0)] = 1.0

    def sampling_params(self, defaults: Mapping[str, Any] | None = None) -> SamplingParams:
        """Fields the request sets, over ``defaults`` (the model's generation config), over these."""
        values = self.model_dump(exclude={"max_new_tokens"})
        given = self.model_dump(exclude={"max_new_tokens"}, exclude_unset=True)
        return SamplingParams(**{**values, **{k: v for k, v in (defaults or {}).items() if k in values}, **given})


class GenerateRequest(BaseModel):
    """Native endpoint: ``text`` or ``input_ids`` in; ``text`` and ``output_ids`` out."""

    model_config = ConfigDict(extra="forbid")

    text: Annotated[str, Strict(), Field(min_length=1)] | None = None
    input_ids: Annotated[list[TokenId], Field(min_length=1)] | None = None
    sampling_params: GenerateSampling = GenerateSampling()
    stream: Bool = False


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error answer (OpenAI's shape)."""

    error: ErrorDetail
