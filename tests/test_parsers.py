"""The built-in reasoning and tool-call parsers against the parser conformance suites, and the server's
parser chain (reasoning first, then tools) for non-streaming and streaming answers alike."""

from __future__ import annotations

import json

import pytest

from minisgl_core.contracts import SamplingParams
from minisgl_core.server.chat_protocol import ChatFields
from minisgl_core.server.chat_stream import ChatSettings, merge_delta, message
from minisgl_core.server.errors import APIError
from minisgl_core.testing import ReasoningCase, ReasoningParserSuite, ToolCase, ToolParserSuite, pieces_of

WEATHER = {"city": "Paris", "unit": "celsius"}
HERMES_CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
HERMES_TIME = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'


class TestQwen3Reasoning(ReasoningParserSuite):
    parser = "qwen3"
    cases = [
        ReasoningCase("<think>\nLet me think.\n</think>\n\nParis.", "Let me think.", "Paris."),
        ReasoningCase("<think>\n\n</think>\n\nParis.", "", "Paris."),
        ReasoningCase("<think>\nStill thinking when the limit hit", "Still thinking when the limit hit", ""),
        ReasoningCase("Paris, no thinking.", "", "Paris, no thinking."),
        ReasoningCase("Paris <think>not a block</think>", "", "Paris <think>not a block</think>"),
        ReasoningCase("<think>\nhm\n</think>\n\nParis.", "", "<think>\nhm\n</think>\n\nParis.", thinking=False),
        ReasoningCase("<think>a</think>b</think>c", "a", "b</think>c"),
    ]


class TestDeepSeekR1Reasoning(ReasoningParserSuite):
    parser = "deepseek-r1"
    cases = [
        ReasoningCase("Let me think.\n</think>\n\nParis.", "Let me think.", "Paris."),
        ReasoningCase("<think>\nLet me think.\n</think>\n\nParis.", "Let me think.", "Paris."),
        ReasoningCase("cut off while thinking", "cut off while thinking", ""),
        ReasoningCase("Paris.", "", "Paris.", thinking=False),
    ]


class TestHermesTools(ToolParserSuite):
    parser = "hermes"
    cases = [
        ToolCase(HERMES_CALL, "", [("get_weather", WEATHER)]),
        ToolCase("Let me check.\n\n" + HERMES_CALL, "Let me check.", [("get_weather", WEATHER)]),
        ToolCase(HERMES_CALL + "\n" + HERMES_TIME, "", [("get_weather", WEATHER), ("get_time", {"zone": "CET"})]),
        ToolCase("No tools needed: 2 < 3.", "No tools needed: 2 < 3."),
        ToolCase(
            '<tool_call>\n{"arguments": {"zone": "CET"}, "name": "get_time"}\n</tool_call>',
            "",
            [("get_time", {"zone": "CET"})],
        ),  # fmt: skip
        ToolCase('<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>', "", [("get_time", {})]),
    ]
    malformed = [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": \n</tool_call>',
        "<tool_call>\nnot json at all\n</tool_call>",
        '<tool_call>\n["get_weather"]\n</tool_call>',
    ]


class TestLlama3Tools(ToolParserSuite):
    parser = "llama3"
    cases = [
        ToolCase(
            '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}',
            "",
            [("get_weather", WEATHER)],
        ),  # fmt: skip
        ToolCase(
            '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}; '
            '{"name": "get_time", "parameters": {"zone": "CET"}}',
            "",
            [("get_weather", WEATHER), ("get_time", {"zone": "CET"})],
        ),
        ToolCase(
            'I will look it up.\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
            "I will look it up.",
            [("get_weather", WEATHER)],
        ),
        ToolCase(
            '<|python_tag|>{"name": "get_time", "parameters": {"zone": "CET"}}', "", [("get_time", {"zone": "CET"})]
        ),  # fmt: skip
        ToolCase('Sets look like {1, 2} and {"a": 1}.', 'Sets look like {1, 2} and {"a": 1}.'),
    ]
    malformed = ['{"name": "get_weather", "parameters": {"city": }}', '{"name": 5, "parameters": {}}']


def _fields(**kw) -> ChatFields:
    tools = [{"type": "function", "function": {"name": n}} for n in ("get_weather", "get_time")]
    return ChatFields(tools=tools, **kw)


def _stream(settings: ChatSettings, body: ChatFields, pieces: list[str]) -> dict:
    out = settings.output(body)
    total: dict = {"role": "assistant", "content": None}
    if out.has_reasoning:
        total["reasoning_content"] = None
    for piece in pieces:
        merge_delta(total, out.feed(piece))
    merge_delta(total, out.finish())
    if total["content"] is None and "tool_calls" not in total:
        total["content"] = ""
    return total


def _no_ids(msg: dict) -> dict:
    return {**msg, "tool_calls": [c["function"] for c in msg.get("tool_calls", [])]}


def test_chain_splits_reasoning_then_tools_streamed_like_whole() -> None:
    settings = ChatSettings.create({}, "qwen3", "hermes")
    text = "<think>\nWeather é 天气?\n</think>\n\nChecking.\n" + HERMES_CALL + "\n" + HERMES_TIME
    whole = message(settings.output(_fields()), text)
    assert whole["reasoning_content"] == "Weather é 天气?" and whole["content"] == "Checking."
    assert [json.loads(c["function"]["arguments"]) for c in whole["tool_calls"]] == [WEATHER, {"zone": "CET"}]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in whole["tool_calls"])
    for pieces in pieces_of(text)[:40]:
        assert _no_ids(_stream(settings, _fields(), pieces)) == _no_ids(whole)


def test_tool_choice_none_and_separate_reasoning_off() -> None:
    settings = ChatSettings.create({}, "qwen3", "hermes")
    text = "<think>x</think>" + HERMES_CALL
    msg = message(settings.output(_fields(tool_choice="none")), text)
    assert "tool_calls" not in msg and msg["content"] == HERMES_CALL and msg["reasoning_content"] == "x"
    msg = message(settings.output(_fields(tool_choice="none", separate_reasoning=False)), text)
    assert msg["content"] == text


def test_named_tool_choice_and_no_parallel_calls() -> None:
    settings = ChatSettings.create({}, None, "hermes")
    named = _fields(tool_choice={"type": "function", "function": {"name": "get_time"}})
    msg = message(settings.output(named), HERMES_CALL + HERMES_TIME)
    assert [c["function"]["name"] for c in msg["tool_calls"]] == ["get_time"] and msg["content"] == HERMES_CALL
    out = settings.output(_fields(parallel_tool_calls=False))
    msg = message(out, HERMES_CALL + HERMES_TIME)
    assert [c["function"]["name"] for c in msg["tool_calls"]] == ["get_weather"]
    assert out.finish_reason("stop") == "tool_calls" and out.finish_reason("length") == "length"


def test_forced_tool_choice_schema_and_parsers() -> None:
    from minisgl_core.server.tool_choice import forced_schema

    tools = [{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}]
    named = {"type": "function", "function": {"name": "get_time"}}
    assert forced_schema(tools, named, True) == {"type": "object"}
    required = forced_schema(tools, "required", False)
    assert required["minItems"] == 1 and required["maxItems"] == 1
    assert required["items"]["anyOf"][0]["properties"]["name"] == {"type": "string", "enum": ["get_time"]}
    assert forced_schema(tools, "auto", True) is None
    settings = ChatSettings.create({}, "qwen3", None, constrained=True)
    text = (
        '[{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}, '
        '{"name": "get_time", "parameters": {"zone": "CET"}}]'
    )
    whole = message(settings.output(_fields(tool_choice="required")), text)
    assert whole["content"] is None
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in whole["tool_calls"]] == [
        ("get_weather", WEATHER), ("get_time", {"zone": "CET"}),
    ]  # fmt: skip
    for pieces in pieces_of(text)[:60]:
        assert _no_ids(_stream(settings, _fields(tool_choice="required"), pieces)) == _no_ids(whole)
    body = _fields(tool_choice={"type": "function", "function": {"name": "get_weather"}})
    args = '{"city": "Paris 天气"}'
    whole = message(settings.output(body), args)
    assert whole["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": args}
    for pieces in pieces_of(args):
        assert _no_ids(_stream(settings, body, pieces)) == _no_ids(whole)
    assert settings.constrain(body, SamplingParams()).json_schema == '{"type": "object"}'
    with pytest.raises(APIError, match="response_format"):
        settings.constrain(body, SamplingParams(regex="a+"))
    assert ChatSettings.create({}, None, "hermes").forced(body) is None  # no grammar backend: parsed only


def test_minisgl_plugins_lists_the_parsers(capsys) -> None:
    from minisgl_core.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "reasoning parsers: qwen3, deepseek-r1" in out and "tool-call parsers: hermes, llama3" in out
