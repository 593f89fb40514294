"""Chat templates rendered as transformers renders them (the real Qwen3 tokenizer and template): tools,
``enable_thinking``, multi-turn tool calls and results, ``continue_final_message``, any role, text parts;
a model without a template is refused; ``--chat-template`` and generation-config defaults are read right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from minisgl_core.checkpoint import generation_defaults
from minisgl_core.server.chat_protocol import ChatFields, ChatMessage
from minisgl_core.server.messages import EngineInfo, TokenizeRequest
from minisgl_core.server.tokenizer_worker import PromptError, PromptTokenizer
from minisgl_core.text import ChatTemplateError, load_chat_template, render_chat

QWEN3 = Path("/work/shared/tokenizers/qwen3")
pytestmark = pytest.mark.skipif(not QWEN3.is_dir(), reason="needs the Qwen3 tokenizer")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
HISTORY = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [CALL]},
    {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_1"},
]


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(str(QWEN3))


def as_template(messages: list[dict]) -> list[dict]:
    """The messages as the server hands them to the template (through the request model)."""
    return [ChatMessage.model_validate(m).as_template_input() for m in messages]


def hf_messages(messages: list[dict]) -> list[dict]:
    """What a transformers user passes: arguments as objects, as Qwen's docs show."""
    out = []
    for m in messages:
        m = {**{k: v for k, v in m.items() if v is not None}, "content": m.get("content") or ""}
        if "tool_calls" in m:
            m["tool_calls"] = [
                {**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
                for c in m["tool_calls"]
            ]
        out.append(m)
    return out


@pytest.mark.parametrize(
    "messages, options",
    [
        (HISTORY[:2], {"tools": TOOLS}),
        (HISTORY, {"tools": TOOLS}),
        (HISTORY[:2], {"kwargs": {"enable_thinking": False}}),
        (HISTORY, {"tools": TOOLS, "kwargs": {"enable_thinking": False}}),
        (HISTORY[:2] + [{"role": "assistant", "content": "It is"}], {"continue_final_message": True}),
        (HISTORY[:2], {"add_generation_prompt": False}),
        (HISTORY[:2], {"documents": [{"title": "Paris", "text": "Sunny."}]}),
    ],
    ids=["tools", "tool-results", "no-thinking", "tools-no-thinking", "continue", "no-gen-prompt", "documents"],
)
def test_render_equals_transformers(tok, messages, options) -> None:
    options = {"add_generation_prompt": not options.get("continue_final_message"), **options}
    got = render_chat(tok, as_template(messages), **options)
    kwargs = options.pop("kwargs", {})
    want = tok.apply_chat_template(hf_messages(messages), tokenize=False, **options, **kwargs)
    assert got == want


def test_request_fields_reach_the_template(tok) -> None:
    body = ChatFields(tools=TOOLS, chat_template_kwargs={"enable_thinking": False})
    text = render_chat(tok, as_template(HISTORY[:2]), **body.template_options())
    assert "<tools>" in text and "get_weather" in text and text.endswith("<think>\n\n</think>\n\n")
    named = ChatFields(tools=TOOLS * 2, tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert len(named.template_options()["tools"]) == 2
    parts = ChatMessage.model_validate({"role": "user", "content": [{"type": "text", "text": "a"}] * 2, "name": "x"})
    assert parts.as_template_input() == {"role": "user", "content": "a\na", "name": "x"}
    odd = as_template([{"role": "user", "content": "hi"}, {"role": "critic", "content": "meh"}])
    assert odd[1]["role"] == "critic"  # any role goes to the template, which decides


def test_template_errors(tok, tmp_path) -> None:
    with pytest.raises(ChatTemplateError, match="continue_final_message"):
        render_chat(tok, as_template(HISTORY[:2]), continue_final_message=True, add_generation_prompt=False)
    with pytest.raises(ChatTemplateError, match="tokenize") as err:
        render_chat(tok, as_template(HISTORY[:2]), kwargs={"tokenize": True})
    assert err.value.param == "chat_template_kwargs"
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}")
    assert load_chat_template(str(path)) == path.read_text()
    assert render_chat(tok, [{"role": "user", "content": "hi"}], template=load_chat_template(str(path))) == "[user]hi"
    with pytest.raises(ValueError, match="no such file"):
        load_chat_template("nonexistent.jinja")


def test_model_without_template_gets_a_400_saying_so(tok) -> None:
    bare = AutoTokenizer.from_pretrained(str(QWEN3))
    bare.chat_template = None
    worker = PromptTokenizer(bare, EngineInfo(4096, 151936))
    req = TokenizeRequest(["0"], [], messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(PromptError, match="no chat template") as err:
        worker.build(req)
    assert err.value.param == "messages"
    with_flag = PromptTokenizer(bare, EngineInfo(4096, 151936), chat_template=tok.chat_template)
    want = tok.apply_chat_template(req.messages, add_generation_prompt=True, tokenize=False)
    assert with_flag.prompt_ids(req) == tok.encode(want, add_special_tokens=False)


def test_generation_defaults(tmp_path) -> None:
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_new_tokens": 99, "do_sample": True})
    )
    want = {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "max_tokens": 99}
    assert generation_defaults("auto", tmp_path) == want
    assert generation_defaults(str(tmp_path), None) == want
    assert generation_defaults("none", tmp_path) == {}
    assert generation_defaults("auto", tmp_path / "missing") == {}
    with pytest.raises(ValueError, match="expected auto, none or a folder"):
        generation_defaults("nonsense", tmp_path)


def test_offline_llm_uses_generation_defaults_unless_told_otherwise(tiny_qwen3, tmp_path) -> None:
    from minisgl_core import LLM, SamplingParams

    (tmp_path / "generation_config.json").write_text(json.dumps({"top_k": 1, "max_new_tokens": 5}))
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", generation_config=str(tmp_path))
    assert llm.get_default_sampling_params() == SamplingParams(top_k=1, max_tokens=5)
    got = llm.generate("Hello", use_tqdm=False)[0]  # top_k 1 at temperature 1: greedy, 5 tokens
    want = llm.generate("Hello", SamplingParams(temperature=0.0, max_tokens=5, ignore_eos=True), use_tqdm=False)[0]
    assert got.token_ids == want.token_ids[: len(got.token_ids)] and len(got.token_ids) <= 5
    plain = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", generation_config="none")
    assert plain.get_default_sampling_params() == SamplingParams()
