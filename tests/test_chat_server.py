"""Chat as Qwen3 and Llama 3 users run it, through a real server process and the stock ``openai`` client.

The model is the scripted model of ``minisgl_core.testing`` with the real Qwen3 tokenizer: a trigger in the
prompt picks the text it generates, token by token through the real engine, so the parsers see exactly
what a real Qwen3 would send. Proven here: reasoning split off (streaming and not, thinking off, cut off
inside the block), tool calls for both built-in formats (single, parallel, with and without content before
them; streamed increments reassembled by the client's stream helper), ``tool_choice: none``, malformed
calls as content, multi-turn tool results rendered like transformers, and generation-config defaults
applied and overridden field by field (the tokenizer worker's debug log shows the values used).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import openai
import pytest
from server_harness import ServerProcess
from transformers import AutoTokenizer

from minisgl_core.testing import save_scripted_model

QWEN3 = Path("/work/shared/tokenizers/qwen3")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not QWEN3.is_dir(), reason="needs the Qwen3 tokenizer")]

WEATHER = {"city": "Paris", "unit": "celsius"}
CALL_W = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n</tool_call>'
CALL_T = '<tool_call>\n{"name": "get_time", "arguments": {"zone": "CET"}}\n</tool_call>'
LONG = "<think>\n" + " ".join(f"step {i}." for i in range(80)) + "\n</think>\n\nDone."
SCRIPTS = [
    ("script:think", "<think>\nThe user greets me. 天气 é 🌦\n</think>\n\nHello! How can I help?"),
    ("script:nothink", "Hello without thinking."),
    ("script:long", LONG),
    ("script:weather", "<think>\nNeed the weather.\n</think>\n\n" + CALL_W),
    ("script:two", "<think>\nTwo tools.\n</think>\n\nLet me check both.\n" + CALL_W + "\n" + CALL_T),
    ("script:bad", '<tool_call>\n{"name": "get_weather", "arguments": {"city": }}\n</tool_call>'),
    ("script:final", "<think>\nThe tool answered.\n</think>\n\nIt is sunny in Paris."),
    ("script:args", '{"city": "Paris"}'),
    (
        "script:req",
        '[{"name": "get_weather", "parameters": {"city": "Paris"}}, '
        '{"name": "get_time", "parameters": {"zone": "CET"}}]',
    ),
    ("script:llama", '{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}'),
    (
        "script:llama2",
        'Checking both.\n{"name": "get_weather", "parameters": {"city": "Paris", "unit": "celsius"}}; '
        '{"name": "get_time", "parameters": {"zone": "CET"}}',
    ),
]
DEFAULTS = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_new_tokens": 100}


def tool(name: str, prop: str) -> dict:
    schema = {"type": "object", "properties": {prop: {"type": "string"}}, "required": [prop]}
    return {"type": "function", "function": {"name": name, "description": name, "parameters": schema}}


TOOLS = [tool("get_weather", "city"), tool("get_time", "zone")]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(QWEN3))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_scripted_model(tmp_path_factory.mktemp("scripted"), QWEN3, SCRIPTS, DEFAULTS)


def _serve(path: Path, log: Path, *flags: str) -> ServerProcess:
    previous = os.environ.get("MINISGL_PLUGIN_MODULES")
    os.environ["MINISGL_PLUGIN_MODULES"] = "minisgl_core.testing.scripted"
    try:
        return ServerProcess(path, log, "--load-format", "dummy", "--max-model-len", "2048", *flags)
    finally:
        if previous is None:
            del os.environ["MINISGL_PLUGIN_MODULES"]
        else:
            os.environ["MINISGL_PLUGIN_MODULES"] = previous


@pytest.fixture(scope="module")
def qwen(ckpt, tmp_path_factory):
    flags = ("--reasoning-parser", "qwen3", "--tool-call-parser", "hermes", "--log-level", "DEBUG")
    srv = _serve(ckpt, tmp_path_factory.mktemp("qwen") / "server.log", *flags)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def llama(ckpt, tmp_path_factory, tok):
    """The same scripts, a tokenizer without a chat template, the template given with --chat-template."""
    root = tmp_path_factory.mktemp("llama")
    bare = shutil.copytree(ckpt, root / "ckpt")
    config = json.loads((bare / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    (root / "template.jinja").write_text(tok.chat_template)
    flags = ("--tool-call-parser", "llama3", "--chat-template", str(root / "template.jinja"))
    srv = _serve(bare, root / "server.log", *flags)
    srv.model_path = bare  # type: ignore[attr-defined]
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def bare(llama, tmp_path_factory):
    """The template-less tokenizer served without --chat-template."""
    srv = _serve(llama.model_path, tmp_path_factory.mktemp("bare") / "server.log")
    yield srv
    srv.stop()


def client(srv: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", timeout=60, max_retries=0)


def chat(srv: ServerProcess, messages: list[dict], **kw):
    return client(srv).chat.completions.create(model=_model(srv), messages=messages, **kw)


def _model(srv: ServerProcess) -> str:
    return json.loads(srv.get("/v1/models")[1])["data"][0]["id"]


def stream(srv: ServerProcess, messages: list[dict], **kw) -> tuple[str, str, str | None, list]:
    """Streamed reasoning, content, finish reason, chunks (with usage)."""
    chunks = list(
        chat(srv, messages, stream=True, stream_options={"include_usage": True}, **kw)  # type: ignore[arg-type]
    )
    reasoning = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reason = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    return reasoning, content, reason[-1] if reason else None, chunks


def script_tokens(tok, text: str) -> int:
    return len(tok.encode(text, add_special_tokens=False)) + 1  # + EOS


# -- reasoning ---------------------------------------------------------------------------------------------


def test_reasoning_split_non_streaming_and_streaming(qwen, tok) -> None:
    out = chat(qwen, user("script:think hi"))
    msg = out.choices[0].message
    assert msg.reasoning_content == "The user greets me. 天气 é 🌦"  # type: ignore[attr-defined]
    assert msg.content == "Hello! How can I help?" and out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == script_tokens(tok, SCRIPTS[0][1])  # the think block counts too
    reasoning, content, reason, chunks = stream(qwen, user("script:think hi"))
    assert (reasoning, content, reason) == (msg.reasoning_content, msg.content, "stop")  # type: ignore[attr-defined]
    assert sum(1 for c in chunks if c.choices and getattr(c.choices[0].delta, "reasoning_content", None)) > 3
    assert chunks[-1].usage.completion_tokens == out.usage.completion_tokens


def test_thinking_off_through_chat_template_kwargs(qwen, tok) -> None:
    kwargs = {"chat_template_kwargs": {"enable_thinking": False}}
    out = chat(qwen, user("script:nothink hi"), extra_body=kwargs)
    msg = out.choices[0].message
    assert msg.content == "Hello without thinking." and msg.reasoning_content is None  # type: ignore[attr-defined]
    want = tok.apply_chat_template(
        user("script:nothink hi"), tokenize=False, add_generation_prompt=True, enable_thinking=False
    )
    assert want.endswith("<think>\n\n</think>\n\n")
    assert out.usage.prompt_tokens == len(tok.encode(want, add_special_tokens=False))
    assert stream(qwen, user("script:nothink hi"), extra_body=kwargs)[:3] == ("", msg.content, "stop")


def test_output_ending_inside_the_reasoning_block(qwen) -> None:
    out = chat(qwen, user("script:long"), max_tokens=9)
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 9
    assert msg.reasoning_content.startswith("step 0. step 1") and not msg.content  # type: ignore[attr-defined]
    reasoning, content, reason, _ = stream(qwen, user("script:long"), max_tokens=9)
    assert (reasoning, content, reason) == (msg.reasoning_content, "", "length")  # type: ignore[attr-defined]


# -- tool calls --------------------------------------------------------------------------------------------


def _calls(msg) -> list[tuple[str, dict]]:
    return [(c.function.name, json.loads(c.function.arguments)) for c in msg.tool_calls or []]


@pytest.mark.parametrize(
    "trigger, content, calls",
    [
        ("script:weather", None, [("get_weather", WEATHER)]),
        ("script:two", "Let me check both.", [("get_weather", WEATHER), ("get_time", {"zone": "CET"})]),
    ],
    ids=["single", "parallel-after-content"],
)
def test_hermes_tool_calls(qwen, trigger, content, calls) -> None:
    out = chat(qwen, user(trigger), tools=TOOLS)
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "tool_calls" and msg.content == content and _calls(msg) == calls
    assert all(c.id.startswith("call_") and c.type == "function" for c in msg.tool_calls)
    assert len({c.id for c in msg.tool_calls}) == len(calls)
    with client(qwen).chat.completions.stream(model=_model(qwen), messages=user(trigger), tools=TOOLS) as s:
        final = s.get_final_completion()
    streamed = final.choices[0].message
    assert _calls(streamed) == calls and (streamed.content or None) == content
    assert final.choices[0].finish_reason == "tool_calls"


def test_streamed_tool_call_increments(qwen) -> None:
    _, _, reason, chunks = stream(qwen, user("script:two"), tools=TOOLS)
    pieces = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    firsts = [p for p in pieces if p.id]
    assert [p.index for p in firsts] == [0, 1] and [p.function.name for p in firsts] == ["get_weather", "get_time"]
    assert all(p.function.name is None for p in pieces if not p.id)
    assert len(pieces) > 4 and reason == "tool_calls"  # arguments arrive in several fragments
    args = "".join(p.function.arguments or "" for p in pieces if p.index == 0)
    assert json.loads(args) == WEATHER


def test_tool_choice_none_never_returns_tool_calls(qwen) -> None:
    for kw in ({"tool_choice": "none"}, {}):
        out = chat(qwen, user("script:weather"), tools=TOOLS, **kw) if kw else chat(qwen, user("script:weather"))
        msg = out.choices[0].message
        assert not msg.tool_calls and msg.content == CALL_W and out.choices[0].finish_reason == "stop"
    _, content, reason, chunks = stream(qwen, user("script:weather"), tools=TOOLS, tool_choice="none")
    assert content == CALL_W and reason == "stop"
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)


def test_malformed_tool_call_is_content_not_an_error(qwen) -> None:
    out = chat(qwen, user("script:bad"), tools=TOOLS)
    assert not out.choices[0].message.tool_calls and out.choices[0].message.content == SCRIPTS[5][1]
    assert out.choices[0].finish_reason == "stop"
    assert stream(qwen, user("script:bad"), tools=TOOLS)[2] in ("stop", "tool_calls")  # no 500 either way


def test_multi_turn_with_tool_results_renders_like_transformers(qwen, tok) -> None:
    first = chat(qwen, user("Weather in Paris? script:weather"), tools=TOOLS).choices[0].message
    call = first.tool_calls[0]
    history = [
        *user("Weather in Paris? script:weather"),
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C script:final"},
    ]
    out = chat(qwen, history, tools=TOOLS)
    assert out.choices[0].message.content == "It is sunny in Paris." and not out.choices[0].message.tool_calls
    hf = [
        *user("Weather in Paris? script:weather"),
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": WEATHER}}],
        },  # fmt: skip
        {"role": "tool", "content": "sunny, 21 C script:final"},
    ]
    want = tok.apply_chat_template(hf, tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert "<tool_response>\nsunny, 21 C script:final\n</tool_response>" in want
    assert out.usage.prompt_tokens == len(tok.encode(want, add_special_tokens=False))


def test_tool_choice_errors_are_400s(qwen, llama) -> None:
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        chat(qwen, user("x"), tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    with pytest.raises(openai.BadRequestError, match="needs tools"):
        chat(qwen, user("x"), tool_choice="required")
    llama_tools = chat(llama, user("script:llama"), tools=TOOLS)  # started with --tool-call-parser llama3
    assert _calls(llama_tools.choices[0].message) == [("get_weather", WEATHER)]


@pytest.mark.parametrize(
    "trigger, content, calls",
    [
        ("script:llama", None, [("get_weather", WEATHER)]),
        ("script:llama2", "Checking both.", [("get_weather", WEATHER), ("get_time", {"zone": "CET"})]),
    ],
    ids=["single", "parallel-after-content"],
)
def test_llama3_tool_calls_with_chat_template_flag(llama, trigger, content, calls) -> None:
    out = chat(llama, user(trigger), tools=TOOLS)
    msg = out.choices[0].message
    assert out.choices[0].finish_reason == "tool_calls" and msg.content == content and _calls(msg) == calls
    assert not hasattr(msg, "reasoning_content") or msg.reasoning_content is None  # type: ignore[attr-defined]
    with client(llama).chat.completions.stream(model=_model(llama), messages=user(trigger), tools=TOOLS) as s:
        final = s.get_final_completion()
    assert _calls(final.choices[0].message) == calls and (final.choices[0].message.content or None) == content


def test_required_and_named_tool_choice_are_enforced_by_a_json_schema(qwen) -> None:
    pytest.importorskip("xgrammar")
    named = {"type": "function", "function": {"name": "get_weather"}}
    out = chat(qwen, user("script:args"), tools=TOOLS, tool_choice=named)
    msg = out.choices[0].message
    assert _calls(msg) == [("get_weather", {"city": "Paris"})] and msg.content is None
    assert out.choices[0].finish_reason == "tool_calls"
    assert 'json_schema=\'{"type": "object", "properties": {"city"' in _last_params(qwen)
    both = [("get_weather", {"city": "Paris"}), ("get_time", {"zone": "CET"})]
    out = chat(qwen, user("script:req"), tools=TOOLS, tool_choice="required")
    assert _calls(out.choices[0].message) == both and out.choices[0].finish_reason == "tool_calls"
    with client(qwen).chat.completions.stream(
        model=_model(qwen), messages=user("script:req"), tools=TOOLS, tool_choice="required"
    ) as s:
        assert _calls(s.get_final_completion().choices[0].message) == both
    # the model wants to write prose; the schema lets only the named call's arguments through
    out = chat(qwen, user("script:nothink"), tools=TOOLS, tool_choice=named, temperature=0.0, max_tokens=12)
    msg = out.choices[0].message
    assert msg.content is None and [c.function.name for c in msg.tool_calls] == ["get_weather"]
    assert msg.tool_calls[0].function.arguments.startswith('{"city": "')


def test_template_fields_through_the_server(qwen, bare, tok) -> None:
    def prompt_tokens(messages: list[dict], **extra) -> int:
        return chat(qwen, messages, max_tokens=1, extra_body=extra).usage.prompt_tokens

    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    assert prompt_tokens(user("script:nothink hi"), chat_template=template) == len(
        tok.encode("<user>script:nothink hi", add_special_tokens=False)
    )
    partial = [*user("script:nothink hi"), {"role": "assistant", "content": "It is"}]
    want = tok.apply_chat_template(partial, tokenize=False, continue_final_message=True)
    got = prompt_tokens(partial, add_generation_prompt=False, continue_final_message=True)
    assert got == len(tok.encode(want, add_special_tokens=False))
    with pytest.raises(openai.BadRequestError, match="continue_final_message"):
        chat(qwen, partial, extra_body={"continue_final_message": True})
    with pytest.raises(openai.BadRequestError, match="no chat template") as err:
        chat(bare, user("hi"))
    assert err.value.body["param"] == "messages"  # type: ignore[index]


# -- generation defaults -----------------------------------------------------------------------------------

USED = re.compile(r"request \d+: \d+ prompt tokens, SamplingParams\((.*)\)$", re.MULTILINE)


def _last_params(srv: ServerProcess) -> str:
    return USED.findall(srv.log())[-1]


def test_generation_config_defaults_applied_and_overridden(qwen) -> None:
    card = json.loads(qwen.get("/v1/models")[1])["data"][0]
    assert card["default_sampling_params"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_tokens": 100}
    assert "sampling defaults (--generation-config auto): max_tokens=100, temperature=0.6" in qwen.log()
    out = chat(qwen, user("script:long"))
    assert out.usage.completion_tokens == 100 and out.choices[0].finish_reason == "length"
    used = _last_params(qwen)
    assert "temperature=0.6, top_p=0.95, top_k=20, min_p=0.0" in used and "max_tokens=100" in used
    out = chat(qwen, user("script:long"), temperature=0.1, max_tokens=7, extra_body={"top_k": 5})
    assert out.usage.completion_tokens == 7
    used = _last_params(qwen)
    assert "temperature=0.1, top_p=0.95, top_k=5, min_p=0.0" in used and "max_tokens=7" in used
    status, native = qwen.post("/generate", {"text": "script:long", "sampling_params": {"top_p": 0.5}})
    assert status == 200 and native["meta_info"]["completion_tokens"] == 100
    assert "temperature=0.6, top_p=0.5, top_k=20" in _last_params(qwen)
