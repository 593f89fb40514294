"""``tool_choice`` ``"required"`` and a named function, enforced by constrained decoding.

When a grammar backend is active (``--grammar-backend``, see structured outputs), the server does what vLLM
does: the output is constrained by a JSON Schema built from the tools and parsed here, not by the model's
own tool-call format. ``required``: a JSON array of one or more ``{"name": ..., "parameters": {...}}``
objects, each naming one of the tools and matching its parameters (one call only with
``parallel_tool_calls: false``). A named function: the output is that function's arguments object. Either
way the answer always holds at least one call, with valid JSON arguments, unless the length limit cut it.

Without a grammar backend the model's own format is parsed (``--tool-call-parser``); the named function is
the only tool the template shows, calls to other tools come back as content, and nothing forces a call.
"""

from __future__ import annotations

from typing import Any

from minisgl_core.builtin.parsers.tool_formats import Llama3ToolParser
from minisgl_core.builtin.parsers.tool_stream import call_id
from minisgl_core.contracts.parsers import ToolCallDelta, ToolDelta, ToolParser, ToolParserContext


def forced_schema(tools: list[dict[str, Any]], choice: Any, parallel: bool) -> dict[str, Any] | None:
    """The JSON Schema that forces ``choice`` (``None`` for ``auto``/``none``)."""
    params = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in tools}
    if isinstance(choice, dict):
        return params[choice["function"]["name"]]
    if choice != "required":
        return None
    items = [
        {
            "type": "object",
            "properties": {"name": {"type": "string", "enum": [name]}, "parameters": schema},
            "required": ["name", "parameters"],
        }
        for name, schema in params.items()
    ]
    array: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": items}}
    if not parallel:
        array["maxItems"] = 1
    return array


class NamedCallParser(ToolParser):
    """The whole output is the arguments of the named function: one call, streamed as it comes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = False

    def feed(self, text: str) -> ToolDelta:
        if not self.started:
            text = text.lstrip()
            if not text:
                return ToolDelta()
            self.started = True
            return ToolDelta(calls=[ToolCallDelta(0, call_id(), self.name, text)])
        return ToolDelta(calls=[ToolCallDelta(0, arguments=text)])

    def finish(self) -> ToolDelta:
        return ToolDelta() if self.started else ToolDelta(calls=[ToolCallDelta(0, call_id(), self.name, "{}")])


class RequiredCallsParser(Llama3ToolParser):
    """A JSON array of ``{"name": ..., "parameters": {...}}`` calls: the brackets and commas are dropped."""

    separators = " \t\r\n,[]"
    strip_before_calls = True


def forced_parser(ctx: ToolParserContext) -> ToolParser:
    """The parser of a constrained ``required``/named answer."""
    if isinstance(ctx.tool_choice, dict):
        return NamedCallParser(ctx.tool_choice["function"]["name"])
    return RequiredCallsParser(ctx)
