"""The body of ``POST /v1/chat/completions``: sampling fields, messages and the chat-template and tool fields
(``chat_protocol.py``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, Strict

from minisgl_core.server.chat_protocol import ChatFields, ChatMessage
from minisgl_core.server.openai_protocol import Bool, Count, SamplingFields


class ChatCompletionRequest(SamplingFields, ChatFields):
    messages: Annotated[list[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Count | None = None
    logprobs: Bool | None = None
    top_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    prompt_logprobs: Annotated[int, Strict(), Field(ge=0, le=20)] | None = None
    """vLLM's extension: each prompt token's logprob and top alternatives (not when streaming)."""

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    @property
    def num_logprobs(self) -> int | None:
        if not self.logprobs:
            return None
        return self.top_logprobs or 0
