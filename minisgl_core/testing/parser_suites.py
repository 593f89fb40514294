"""Conformance suites for output parsers: reasoning parsers and tool-call parsers.

A parser plugin's test names the parser and gives cases, texts as its model writes them::

    from minisgl_core.testing import ReasoningCase, ReasoningParserSuite, ToolCase, ToolParserSuite

    class TestMyReasoning(ReasoningParserSuite):
        parser = "my-reasoning"
        cases = [ReasoningCase("<think>plan</think>answer", reasoning="plan", content="answer")]

    class TestMyTools(ToolParserSuite):
        parser = "my-tools"
        cases = [ToolCase('[[call get_weather {"city": "Paris"}]]', calls=[("get_weather", {"city": "Paris"})])]

Every case is checked fed whole, split in two at every position, one character at a time and in random
pieces: all must give the same result, which is what makes streamed answers equal non-streamed ones. Unicode
variants of every case (accents, CJK, emoji) are checked the same way. Tool calls must stream in OpenAI's
shape (per call: id and name first, then argument text; indices from 0), arguments must be JSON text, calls
to tools the request does not offer must come back as content, and ``malformed`` texts must give content
when whole and no exception when streamed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from minisgl_core.contracts.parsers import ReasoningContext, ToolParserContext
from minisgl_core.plugins import REASONING_PARSER, TOOL_PARSER, lookup

UNICODE = "é 天气 🌦"


@dataclass
class ReasoningCase:
    text: str
    reasoning: str = ""
    content: str = ""
    thinking: bool = True
    """False: the request turned thinking off (``enable_thinking: false``)."""


@dataclass
class ToolCase:
    text: str
    content: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def pieces_of(text: str, seed: int = 0) -> list[list[str]]:
    """The ways the suites split ``text``: whole, in two at every position, per character, random."""
    splits = [[text], list(text)] + [[text[:i], text[i:]] for i in range(1, len(text))]
    rng = random.Random(seed)
    for _ in range(5):
        cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(1, 8)))) if len(text) > 1 else []
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])])
    return splits


def run_reasoning(name: str, ctx: ReasoningContext, pieces: list[str]) -> tuple[str, str]:
    """``(reasoning, content)`` of the registered parser ``name`` fed ``pieces`` then finished."""
    parser = lookup(REASONING_PARSER, name).create(ctx)
    reasoning = content = ""
    for piece in [*pieces, None]:
        out = parser.feed(piece) if piece is not None else parser.finish()
        reasoning, content = reasoning + out.reasoning, content + out.content
    return reasoning, content


def run_tools(name: str, ctx: ToolParserContext, pieces: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """``(content, calls)`` of the registered parser ``name`` fed ``pieces`` then finished; each call is
    ``{"id", "name", "arguments"}``. Checks the streaming shape on the way (``AssertionError``)."""
    parser = lookup(TOOL_PARSER, name).create(ctx)
    content, calls = "", []
    for piece in [*pieces, None]:
        out = parser.feed(piece) if piece is not None else parser.finish()
        content += out.content
        for d in out.calls:
            if d.index == len(calls):
                assert d.id and d.name, f"the first piece of call {d.index} must carry its id and name: {d}"
                calls.append({"id": d.id, "name": d.name, "arguments": d.arguments})
            else:
                assert d.index == len(calls) - 1, f"call pieces out of order: {d}"
                assert d.id is None and d.name is None, f"only the first piece names the call: {d}"
                calls[-1]["arguments"] += d.arguments
    return content, calls


def _unicode(text: str) -> str:
    return text.replace("Paris", f"Paris {UNICODE}")


class ReasoningParserSuite:
    """Checks the reasoning parser registered as :attr:`parser` on :attr:`cases`."""

    parser: ClassVar[str] = ""
    cases: ClassVar[list[ReasoningCase]] = []

    def test_cases(self) -> None:
        assert self.cases, "give the suite some cases"
        for case in self.cases:
            got = run_reasoning(self.parser, ReasoningContext(case.thinking), [case.text])
            assert got == (case.reasoning, case.content), f"{case.text!r}: got {got}"

    def test_every_split_gives_the_same_result(self) -> None:
        for case in self.cases:
            for text in (case.text, _unicode(case.text)):
                ctx = ReasoningContext(case.thinking)
                whole = run_reasoning(self.parser, ctx, [text])
                for pieces in pieces_of(text):
                    assert run_reasoning(self.parser, ctx, pieces) == whole, f"{text!r} split as {pieces}"

    def test_any_prefix_is_accepted(self) -> None:
        """An output cut anywhere (length limit) parses without error and loses no text but whitespace."""
        for case in self.cases:
            for end in range(len(case.text) + 1):
                reasoning, content = run_reasoning(self.parser, ReasoningContext(case.thinking), [case.text[:end]])
                kept = "".join((reasoning + content).split())
                assert all(ch in case.text[:end] for ch in kept)


class ToolParserSuite:
    """Checks the tool-call parser registered as :attr:`parser` on :attr:`cases` and :attr:`malformed`."""

    parser: ClassVar[str] = ""
    cases: ClassVar[list[ToolCase]] = []
    malformed: ClassVar[list[str]] = []
    """Texts that look like calls but are not valid ones: they must come back as content."""

    def _ctx(self, case: ToolCase, names: set[str] | None = None) -> ToolParserContext:
        names = {name for name, _ in case.calls} | {"get_weather"} if names is None else names
        return ToolParserContext([{"type": "function", "function": {"name": n}} for n in sorted(names)])

    def test_cases(self) -> None:
        assert self.cases, "give the suite some cases"
        for case in self.cases:
            content, calls = run_tools(self.parser, self._ctx(case), [case.text])
            assert content == case.content, f"{case.text!r}: content {content!r}"
            got = [(c["name"], json.loads(c["arguments"])) for c in calls]
            assert got == case.calls, f"{case.text!r}: calls {got}"
            assert len({c["id"] for c in calls}) == len(calls), "call ids must be unique"

    def test_every_split_gives_the_same_result(self) -> None:
        for case in self.cases:
            for text in (case.text, _unicode(case.text)):
                whole = _without_ids(run_tools(self.parser, self._ctx(case), [text]))
                for pieces in pieces_of(text):
                    got = _without_ids(run_tools(self.parser, self._ctx(case), pieces))
                    assert got == whole, f"{text!r} split as {pieces}"

    def test_calls_to_tools_not_offered_are_content(self) -> None:
        for case in self.cases:
            if case.calls:
                content, calls = run_tools(self.parser, self._ctx(case, {"some_other_tool"}), [case.text])
                assert not calls and content.strip()

    def test_malformed_calls_are_content(self) -> None:
        """Whole (a non-streaming answer): content and no call. Streamed: no exception (a call whose name
        was streamed before its text turned out malformed stays a call)."""
        for text in self.malformed:
            content, calls = run_tools(self.parser, self._ctx(ToolCase(text)), [text])
            assert not calls and content.strip(), f"{text!r}: {calls}, {content!r}"
            run_tools(self.parser, self._ctx(ToolCase(text)), list(text))


def _without_ids(result: tuple[str, list[dict[str, Any]]]) -> tuple[str, list[tuple[str, str]]]:
    return result[0], [(c["name"], c["arguments"]) for c in result[1]]
