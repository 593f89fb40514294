"""The output-parser contracts: reasoning parsers and tool-call parsers, fed the generated text piece by piece.

Both kinds are *stateful per choice*: the API server creates one instance for every choice of every chat
request (``factory(ctx)``), feeds it the text deltas in order, then calls ``finish()`` once. Feeding the
whole text at once and feeding it in any split must give the same concatenated result; that is what makes a
non-streaming answer equal to the streamed one (``minisgl_core.testing`` checks it at every split position).
Parsers never raise on odd model output: text they cannot interpret is returned as content.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReasoningContext:
    """What a reasoning parser is told about its request."""

    thinking: bool = True
    """False when the request turned thinking off (``chat_template_kwargs`` ``enable_thinking: false`` or
    ``thinking: false``): the output then holds no reasoning block and is all content."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReasoningDelta:
    """One step of a reasoning parser's output: new reasoning text and new content text (either may be '')."""

    reasoning: str = ""
    content: str = ""


class ReasoningParser(ABC):
    """Splits generated text into reasoning (``<think>...</think>`` or the like) and content."""

    @abstractmethod
    def feed(self, text: str) -> ReasoningDelta:
        """Take the next piece of generated text; return what is now certain. Text that may still turn out
        to be part of a tag is held back until it is not."""

    @abstractmethod
    def finish(self) -> ReasoningDelta:
        """The generation ended (possibly inside the reasoning block): return everything held back."""


@dataclass(frozen=True)
class ToolParserContext:
    """What a tool-call parser is told about its request."""

    tools: list[dict[str, Any]] = field(default_factory=list)
    """The request's tools in OpenAI form (``{"type": "function", "function": {"name": ..., ...}}``)."""
    tool_choice: Any = "auto"
    """``"auto"``, ``"required"`` or ``{"type": "function", "function": {"name": ...}}`` (``"none"`` never
    reaches a parser: the server does not parse tool calls then)."""


@dataclass
class ToolCallDelta:
    """A piece of one tool call, OpenAI's streaming shape: the first piece of call ``index`` carries its
    ``id`` and ``name``; later pieces carry argument text only. Concatenating a call's ``arguments`` pieces
    gives its arguments as a JSON text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class ToolDelta:
    """One step of a tool-call parser's output: plain content and tool-call pieces."""

    content: str = ""
    calls: list[ToolCallDelta] = field(default_factory=list)


class ToolParser(ABC):
    """Finds tool calls in generated content (after reasoning was split off)."""

    @abstractmethod
    def feed(self, text: str) -> ToolDelta:
        """Take the next piece of content; return the content and tool-call pieces now certain."""

    @abstractmethod
    def finish(self) -> ToolDelta:
        """The generation ended: return what is held back; an unfinished or malformed call becomes
        content (never an exception)."""
