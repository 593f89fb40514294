"""The chat-specific parts of the request body: messages (any role, ``name``, text parts, assistant
``tool_calls``, ``tool_call_id``), tools and ``tool_choice``, and the template settings vLLM and SGLang take
(``chat_template_kwargs``, ``documents``, ``chat_template``, ``add_generation_prompt``,
``continue_final_message``, ``separate_reasoning``)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Str


class CalledFunction(BaseModel):
    name: Str
    arguments: Str
    """JSON text, as the API returns it."""


class ToolCall(BaseModel):
    id: Str | None = None
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(BaseModel):
    """One message. Roles other than the usual ones go to the template as they are (as vLLM does)."""

    role: Annotated[str, Strict(), Field(min_length=1)]
    content: Str | list[TextPart] | None = None
    name: Str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: Str | None = None
    reasoning_content: Str | None = None

    def as_template_input(self) -> dict[str, Any]:
        """The message as chat templates expect it: text parts joined by new lines, tool-call arguments
        as objects (templates write them with ``tojson``), unset fields left out."""
        content = self.content
        if isinstance(content, list):
            content = "\n".join(part.text for part in content)
        out: dict[str, Any] = {"role": self.role, "content": content or ""}
        for key in ("name", "tool_call_id", "reasoning_content"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.function.name, "arguments": _args(c)}}
                for c in self.tool_calls
            ]
        return out


def _args(call: ToolCall) -> Any:
    try:
        value = json.loads(call.function.arguments)
    except ValueError:
        return call.function.arguments
    return value if isinstance(value, dict) else call.function.arguments


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Strict(), Field(min_length=1)]
    description: Str | None = None
    parameters: dict[str, Any] | None = None
    strict: Bool | None = None


class ToolDef(BaseModel):
    type: Literal["function"]
    function: FunctionDef


class FunctionName(BaseModel):
    name: Str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: FunctionName


class ChatFields(BaseModel):
    """Chat-template and tool fields of a chat completion request."""

    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: Bool = True
    chat_template_kwargs: dict[str, Any] | None = None
    documents: list[dict[str, Any]] | None = None
    chat_template: Str | None = None
    add_generation_prompt: Bool = True
    continue_final_message: Bool = False
    separate_reasoning: Bool = True
    """SGLang's switch: False leaves the reasoning inside ``content`` even with a reasoning parser."""

    def tool_choice_error(self) -> str | None:
        """Why ``tool_choice`` cannot be honoured with these ``tools``, if it cannot."""
        names = [t.function.name for t in self.tools or []]
        choice = self.tool_choice
        if choice is not None and choice != "none" and not names:
            return f"tool_choice {choice if isinstance(choice, str) else 'function'!r} needs tools"
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            return f"tool_choice names {choice.function.name!r}, which is not among the tools"
        return None

    @property
    def effective_tool_choice(self) -> Any:
        """``"none"`` without tools; OpenAI's default ``"auto"`` with tools."""
        if not self.tools:
            return "none"
        if self.tool_choice is None:
            return "auto"
        return self.tool_choice if isinstance(self.tool_choice, str) else self.tool_choice.model_dump()

    def template_options(self) -> dict[str, Any]:
        """What the tokenizer worker passes to the chat template (see ``minisgl_core.text.render_chat``)."""
        tools = [t.model_dump(exclude_none=True) for t in self.tools or []]
        choice = self.effective_tool_choice
        if isinstance(choice, dict):  # the model is shown only the tool it must call
            tools = [t for t in tools if t["function"]["name"] == choice["function"]["name"]]
        return {
            "tools": tools or None,
            "documents": self.documents,
            "template": self.chat_template,
            "add_generation_prompt": self.add_generation_prompt,
            "continue_final_message": self.continue_final_message,
            "kwargs": dict(self.chat_template_kwargs or {}),
        }
