"""A chat choice's generated text -> OpenAI message parts: reasoning, content and tool calls.

The API server makes one :class:`ChatOutput` per choice from the parsers the server was started with
(``--reasoning-parser``, ``--tool-call-parser``) and the request (``separate_reasoning``, ``tools``,
``tool_choice``, ``parallel_tool_calls``). Streaming feeds it each text delta; a non-streaming answer feeds
the whole text once, so both give the same message. Reasoning is split off first; the tool-call parser sees
only the content.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from minisgl_core.contracts.parsers import (
    ReasoningContext,
    ReasoningDelta,
    ReasoningParser,
    ToolDelta,
    ToolParser,
    ToolParserContext,
)
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.plugins import REASONING_PARSER, TOOL_PARSER, Entry, lookup
from minisgl_core.server.chat_protocol import ChatFields
from minisgl_core.server.errors import APIError
from minisgl_core.server.tool_choice import forced_parser, forced_schema


@dataclass
class ChatSettings:
    """The server's chat settings: sampling defaults and the selected parsers (``None``: not parsed)."""

    defaults: dict[str, Any] = field(default_factory=dict)
    reasoning: Entry | None = None
    tools: Entry | None = None
    constrained: bool = False
    """A grammar backend is active: ``tool_choice`` ``required``/named is enforced (``tool_choice.py``)."""

    @classmethod
    def create(
        cls, defaults: dict[str, Any], reasoning: str | None, tools: str | None, constrained: bool = False
    ) -> ChatSettings:
        """Look the parsers up by name (``ValueError`` naming what exists when unknown)."""
        return cls(
            dict(defaults),
            lookup(REASONING_PARSER, reasoning) if reasoning else None,
            lookup(TOOL_PARSER, tools) if tools else None,
            constrained,
        )

    def forced(self, body: ChatFields) -> dict[str, Any] | None:
        """The JSON Schema enforcing the request's ``required``/named ``tool_choice``, when enforceable;
        ``APIError`` when the choice cannot be honoured (no tools, no such tool)."""
        error = body.tool_choice_error()
        if error:
            raise APIError(400, error, "tool_choice")
        choice = body.effective_tool_choice
        if not self.constrained or choice in ("auto", "none"):
            return None
        return forced_schema(
            [t.model_dump(exclude_none=True) for t in body.tools or []], choice, body.parallel_tool_calls
        )

    def constrain(self, body: ChatFields, params: SamplingParams) -> SamplingParams:
        """``params`` with the tool-choice schema as its JSON constraint (unchanged when there is none)."""
        schema = self.forced(body)
        if schema is None:
            return params
        if params.constraint is not None:
            message = "tool_choice 'required' or a named function constrains the output; drop response_format"
            raise APIError(400, message, "tool_choice")
        return dataclasses.replace(params, json_schema=schema)

    def output(self, body: ChatFields) -> ChatOutput:
        """A fresh parser chain for one choice of ``body``; ``APIError`` when its ``tool_choice`` cannot be
        honoured (no such tool, or no tool-call parser)."""
        kwargs = dict(body.chat_template_kwargs or {})
        reasoning = None
        if self.reasoning is not None and body.separate_reasoning:
            thinking = bool(kwargs.get("enable_thinking", kwargs.get("thinking", True)))
            reasoning = self.reasoning.create(ReasoningContext(thinking, kwargs))
        choice = body.effective_tool_choice
        tools = None
        if self.forced(body) is not None:  # checks tool_choice first
            specs = [t.model_dump(exclude_none=True) for t in body.tools or []]
            tools = forced_parser(ToolParserContext(specs, choice))
        elif choice != "none":
            if self.tools is None:
                raise APIError(
                    400, "tool calls need the server started with --tool-call-parser (or send tool_choice 'none')",
                    "tool_choice",
                )  # fmt: skip
            specs = [t.model_dump(exclude_none=True) for t in body.tools or []]
            tools = self.tools.create(ToolParserContext(specs, choice))
        return ChatOutput(reasoning, tools, body.parallel_tool_calls, self.reasoning is not None)


class ChatOutput:
    """One choice's parser chain; :meth:`feed` and :meth:`finish` return OpenAI delta fields."""

    def __init__(
        self, reasoning: ReasoningParser | None, tools: ToolParser | None, parallel: bool, has_reasoning: bool
    ) -> None:
        self.reasoning = reasoning
        self.tools = tools
        self.parallel = parallel
        self.has_reasoning = has_reasoning
        """A reasoning parser is configured: messages carry ``reasoning_content`` (``None`` when empty)."""
        self.num_calls = 0

    def feed(self, text: str) -> dict[str, Any]:
        r = self.reasoning.feed(text) if self.reasoning is not None and text else ReasoningDelta(content=text)
        t = self.tools.feed(r.content) if self.tools is not None and r.content else ToolDelta(r.content)
        return self._delta(r.reasoning, t)

    def finish(self) -> dict[str, Any]:
        r = self.reasoning.finish() if self.reasoning is not None else ReasoningDelta()
        if self.tools is None:
            return self._delta(r.reasoning, ToolDelta(r.content))
        t = self.tools.feed(r.content) if r.content else ToolDelta()
        last = self.tools.finish()
        t.content += last.content
        t.calls += last.calls
        return self._delta(r.reasoning, t)

    def finish_reason(self, reason: str | None) -> str | None:
        return "tool_calls" if reason == "stop" and self.num_calls else reason

    def _delta(self, reasoning: str, t: ToolDelta) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if reasoning:
            delta["reasoning_content"] = reasoning
        if t.content:
            delta["content"] = t.content
        calls: list[dict[str, Any]] = []
        for c in t.calls:
            if c.index > 0 and not self.parallel:
                continue
            if c.id is not None:
                self.num_calls = max(self.num_calls, c.index + 1)
                fn = {"name": c.name, "arguments": c.arguments}
                calls.append({"index": c.index, "id": c.id, "type": "function", "function": fn})
            elif calls and calls[-1]["index"] == c.index:
                calls[-1]["function"]["arguments"] += c.arguments
            else:
                calls.append({"index": c.index, "function": {"arguments": c.arguments}})
        if calls:
            delta["tool_calls"] = calls
        return delta


def merge_delta(total: dict[str, Any], delta: dict[str, Any]) -> None:
    """Add a :meth:`ChatOutput.feed` result to a message being gathered (``total``)."""
    for key in ("reasoning_content", "content"):
        if key in delta:
            total[key] = (total.get(key) or "") + delta[key]
    for call in delta.get("tool_calls", ()):
        calls = total.setdefault("tool_calls", [])
        if "id" in call:
            calls.append({"id": call["id"], "type": "function", "function": dict(call["function"])})
        else:
            calls[call["index"]]["function"]["arguments"] += call["function"]["arguments"]


def message(out: ChatOutput, text: str) -> dict[str, Any]:
    """The whole ``message`` of a non-streaming answer from the choice's full text."""
    total: dict[str, Any] = {"role": "assistant", "content": None}
    if out.has_reasoning:
        total["reasoning_content"] = None
    merge_delta(total, out.feed(text))
    merge_delta(total, out.finish())
    if total["content"] is None and "tool_calls" not in total:
        total["content"] = ""
    return total
