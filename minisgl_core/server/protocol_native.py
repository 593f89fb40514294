"""Bodies of the native endpoints: ``/generate`` (SGLang's shape), ``/tokenize`` and ``/detokenize``
(vLLM's shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.server.chat_protocol import ChatMessage
from minisgl_core.server.openai_protocol import INT32_MAX, MAX_CHOICES, Bool, Count, Seed, StopRegex, Str, TokenId

Ids = Annotated[list[TokenId], Field(min_length=1)]
Text = Annotated[str, Strict(), Field(min_length=1)]


class GenerateSampling(BaseModel):
    """``sampling_params`` of the native ``/generate`` endpoint (SGLang-style names)."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: Count | None = None
    n: Annotated[int, Strict(), Field(ge=1, le=MAX_CHOICES)] = 1
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
    min_new_tokens: Annotated[int, Strict(), Field(ge=0, le=INT32_MAX)] = 0
    logit_bias: dict[str, Annotated[float, Strict(), Field(ge=-100.0, le=100.0)]] | None = None
    json_schema: Annotated[str, Strict(), Field(min_length=1)] | None = None
    regex: Annotated[str, Strict(), Field(min_length=1)] | None = None
    ebnf: Annotated[str, Strict(), Field(min_length=1)] | None = None

    def sampling_params(
        self, logprobs: int | None, defaults: Mapping[str, Any] | None = None, prompt_logprobs: int | None = None
    ) -> SamplingParams:
        """Fields the request sets, over ``defaults`` (the model's generation config), over these."""
        skip = {"max_new_tokens", "n", "min_new_tokens", "ebnf"}
        values = self.model_dump(exclude=skip)
        given = self.model_dump(exclude=skip, exclude_unset=True)
        values = {**values, **{k: v for k, v in (defaults or {}).items() if k in values}, **given}
        max_tokens = INT32_MAX if self.max_new_tokens is None else self.max_new_tokens
        return SamplingParams(
            **values, logprobs=logprobs, prompt_logprobs=prompt_logprobs, min_tokens=self.min_new_tokens,
            max_tokens=max_tokens, grammar=self.ebnf,
        )  # fmt: skip


class GenerateRequest(BaseModel):
    """Native endpoint: ``text`` or ``input_ids`` in (one prompt, or a list of them: the batch form, answered
    with a list); ``text`` and ``output_ids`` out, with ``meta_info``."""

    model_config = ConfigDict(extra="forbid")

    text: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_CHOICES)] | None = None
    input_ids: Ids | Annotated[list[Ids], Field(min_length=1, max_length=MAX_CHOICES)] | None = None
    sampling_params: GenerateSampling | Annotated[list[GenerateSampling], Field(min_length=1)] = GenerateSampling()
    stream: Bool = False
    return_logprob: Bool = False
    top_logprobs_num: Annotated[int, Strict(), Field(ge=0, le=20)] = 0
    logprob_start_len: Annotated[int, Strict(), Field(ge=-1)] = -1

    @property
    def batched(self) -> bool:
        return isinstance(self.text, list) or bool(self.input_ids and isinstance(self.input_ids[0], list))

    def prompts(self) -> list[str | list[int]]:
        if self.text is not None:
            return list(self.text) if isinstance(self.text, list) else [self.text]
        assert self.input_ids is not None
        return list(self.input_ids) if isinstance(self.input_ids[0], list) else [self.input_ids]  # type: ignore[list-item]


class TokenizeBody(BaseModel):
    """``POST /tokenize``: a ``prompt`` or chat ``messages`` -> token ids (vLLM's shape)."""

    model_config = ConfigDict(extra="forbid")

    model: Str | None = None
    prompt: Str | None = None
    messages: Annotated[list[ChatMessage], Field(min_length=1)] | None = None
    add_special_tokens: Bool | None = None
    add_generation_prompt: Bool = True
    return_token_strs: Bool = False


class DetokenizeBody(BaseModel):
    """``POST /detokenize``: token ids -> text (vLLM's shape)."""

    model_config = ConfigDict(extra="forbid")

    model: Str | None = None
    tokens: list[TokenId]
