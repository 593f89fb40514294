"""The built-in tool-call formats: ``hermes`` (Qwen2.5/Qwen3, Hermes: ``<tool_call>{json}</tool_call>``) and
``llama3`` (Llama 3.1-3.3's JSON tool calls: ``{"name": ..., "parameters": {...}}``, several separated by
``;`` or new lines, optionally after ``<|python_tag|>``)."""

from __future__ import annotations

import re

from minisgl_core.builtin.parsers.json_scan import value_end
from minisgl_core.builtin.parsers.think import partial_suffix
from minisgl_core.builtin.parsers.tool_stream import JSONToolStream
from minisgl_core.contracts.parsers import ToolParser, ToolParserContext


class HermesToolParser(JSONToolStream):
    """``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``, any number, text before them."""

    start, end = "<tool_call>", "</tool_call>"

    def find_start(self, text: str) -> tuple[int, int] | None:
        at = text.find(self.start)
        return None if at < 0 else (at, at + len(self.start))

    def hold_from(self, text: str) -> int:
        return len(text) - partial_suffix(text, self.start)

    def find_end(self, body: str) -> tuple[int, int] | None:
        at = body.find(self.end)
        return None if at < 0 else (at, at + len(self.end))

    def hold_tail(self, body: str) -> int:
        return partial_suffix(body, self.end)


_LLAMA_START = re.compile(r"(?:<\|python_tag\|>\s*)?(?=\{\s*\"name\"\s*:)")
_BRACE = r'\{\s*(?:"(?:n(?:a(?:m(?:e(?:"\s*)?)?)?)?)?)?'
_LLAMA_PARTIAL = re.compile(rf"<\|python_tag\|>\s*(?:{_BRACE})?|{_BRACE}")
_TAG = "<|python_tag|>"


class Llama3ToolParser(JSONToolStream):
    """JSON objects with a ``name``; ``parameters`` (or ``arguments``) hold the arguments."""

    separators = " \t\r\n;"

    def find_start(self, text: str) -> tuple[int, int] | None:
        m = _LLAMA_START.search(text)
        return None if m is None else (m.start(), m.end())

    def hold_from(self, text: str) -> int:
        for at in range(max(len(text) - 64, 0), len(text)):
            if text[at] in "{<" and _LLAMA_PARTIAL.fullmatch(text, at) or _TAG.startswith(text[at:]):
                return at
        return len(text)

    def find_end(self, body: str) -> tuple[int, int] | None:
        end = value_end(body)
        return None if end is None else (end, end)


def hermes(ctx: ToolParserContext) -> ToolParser:
    return HermesToolParser(ctx)


def llama3(ctx: ToolParserContext) -> ToolParser:
    return Llama3ToolParser(ctx)
