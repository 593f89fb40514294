"""No silent ignore: every field of OpenAI's Completions and Chat Completions APIs works or is refused with
400 naming it; unknown fields are refused as OpenAI refuses them; ``null`` means the default; the side
endpoints (models, version, tokenize, detokenize). Against a real server process, with raw ``httpx``."""

from __future__ import annotations

import typing

import pytest
from openai.types import completion_create_params as cp
from openai.types.chat import completion_create_params as ccp
from server_harness import http_client, serving

from minisgl_core.checkpoint.tiny import byte_tokenizer
from minisgl_core.text import apply_chat_template

MSG = [{"role": "user", "content": "hi"}]

# One meaningful non-null value per field of the openai package's request types, and what must happen:
# "ok" works (200), "refused" is a 400 naming the field, "any" is work in progress elsewhere (structured
# output, tools, reasoning): refused until it lands, then it works.
COMPLETION_FIELDS = {
    "best_of": (2, "ok"), "echo": (True, "ok"), "frequency_penalty": (0.5, "ok"), "logit_bias": ({"65": 50}, "ok"),
    "logprobs": (2, "ok"), "max_tokens": (3, "ok"), "model": ("tiny", "ok"), "n": (2, "ok"),
    "presence_penalty": (0.5, "ok"), "prompt": ("hi", "ok"), "seed": (3, "ok"), "stop": (["\n"], "ok"),
    "stream_options": ({"include_usage": True}, "ok"), "suffix": ("the end", "refused"),
    "temperature": (0.5, "ok"), "top_p": (0.9, "ok"), "user": ("u1", "ok"), "stream": (True, "ok"),
}  # fmt: skip
CHAT_FIELDS = {
    "audio": ({"voice": "alloy", "format": "wav"}, "refused"), "frequency_penalty": (0.5, "ok"),
    "function_call": ("auto", "any"), "functions": ([{"name": "f", "parameters": {"type": "object"}}], "any"),
    "logit_bias": ({"65": 50}, "ok"), "logprobs": (True, "ok"), "max_completion_tokens": (3, "ok"),
    "max_tokens": (3, "ok"), "messages": (MSG, "ok"), "metadata": ({"k": "v"}, "ok"),
    "modalities": (["text", "audio"], "refused"), "model": ("tiny", "ok"),
    "moderation": ({"model": "omni-moderation-latest"}, "refused"), "n": (2, "ok"),
    "parallel_tool_calls": (False, "any"), "prediction": ({"type": "content", "content": "x"}, "refused"),
    "presence_penalty": (0.5, "ok"), "prompt_cache_key": ("k", "ok"),
    "prompt_cache_options": ({"mode": "explicit", "ttl": "30m"}, "refused"),
    "prompt_cache_retention": ("24h", "refused"), "reasoning_effort": ("low", "any"),
    "response_format": ({"type": "json_object"}, "any"), "safety_identifier": ("s", "ok"), "seed": (3, "ok"),
    "service_tier": ("priority", "refused"), "stop": ("\n", "ok"), "store": (True, "refused"),
    "stream_options": ({"include_usage": True}, "ok"), "temperature": (0.5, "ok"),
    "tool_choice": ("none", "any"), "tools": ([{"type": "function", "function": {"name": "f"}}], "any"),
    "top_logprobs": (2, "ok"), "top_p": (0.9, "ok"), "user": ("u", "ok"), "verbosity": ("low", "refused"),
    "web_search_options": ({}, "refused"), "stream": (True, "ok"),
}  # fmt: skip
BASE = {
    "/v1/completions": {"prompt": "hi", "max_tokens": 2},
    "/v1/chat/completions": {"messages": MSG, "max_tokens": 2},
}


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    yield from serving(tmp_path_factory, tiny_qwen3.path, "--max-model-len", "128", "--served-model-name", "tiny")


@pytest.fixture(scope="module")
def http(server):
    yield from http_client(server)


def _fields(params: type) -> set[str]:
    return set(typing.get_type_hints(params)) | {"stream"}


def test_field_lists_are_the_openai_packages() -> None:
    """The lists below are complete: a field the ``openai`` package adds fails here until it is judged."""
    assert set(COMPLETION_FIELDS) == _fields(cp.CompletionCreateParamsBase)
    assert set(CHAT_FIELDS) == _fields(ccp.CompletionCreateParamsBase)


@pytest.mark.parametrize(
    ("path", "name"),
    [("/v1/completions", n) for n in COMPLETION_FIELDS] + [("/v1/chat/completions", n) for n in CHAT_FIELDS],
)
def test_every_openai_field_works_or_is_refused(http, path, name) -> None:
    value, expect = (COMPLETION_FIELDS if path.endswith("/completions") and "chat" not in path else CHAT_FIELDS)[name]
    body = {**BASE[path], name: value}
    if name == "stream_options":
        body["stream"] = True
    if name == "top_logprobs":
        body["logprobs"] = True
    if name == "tools":  # tool calls need --tool-call-parser; the tools still reach the template
        body["tool_choice"] = "none"
    r = http.post(path, json=body)
    if expect == "ok" or (expect == "any" and r.status_code == 200):
        assert r.status_code == 200, r.text
        if body.get("stream"):
            assert r.text.rstrip().endswith("data: [DONE]")
        return
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == name and name in error["message"], error


@pytest.mark.parametrize("path", list(BASE))
def test_unknown_fields_are_refused_like_openai(http, path) -> None:
    r = http.post(path, json={**BASE[path], "frobnicate": 1})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Unrecognized request argument supplied: frobnicate"
    assert r.json()["error"]["param"] == "frobnicate"
    r = http.post(path, json={**BASE[path], "stream": True, "stream_options": {"include_usage": True, "zap": 1}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options.zap"


NULLABLE = ["n", "logprobs", "stream", "stop", "temperature", "top_p", "max_tokens", "seed", "stream_options",
            "presence_penalty", "frequency_penalty", "user", "logit_bias", "top_k", "min_p", "ignore_eos",
            "repetition_penalty", "stop_token_ids", "skip_special_tokens"]  # fmt: skip


@pytest.mark.parametrize("path", list(BASE))
def test_null_means_default(http, path) -> None:
    extra = ["echo", "best_of", "suffix"]
    if "chat" in path:
        extra = ["top_logprobs", "max_completion_tokens", "tools", "response_format", "metadata"]
    base = {**BASE[path], "temperature": 0.0, "max_tokens": 6, "ignore_eos": True}
    want = http.post(path, json=base).json()
    nulls = {name: None for name in NULLABLE + extra if name not in base}
    got = http.post(path, json={**base, **nulls})
    assert got.status_code == 200, got.text
    key = (lambda c: c["text"]) if "chat" not in path else (lambda c: c["message"]["content"])
    assert [key(c) for c in got.json()["choices"]] == [key(c) for c in want["choices"]]
    assert got.json()["usage"] == want["usage"]


def test_stream_options_need_stream(http) -> None:
    for path in BASE:
        for stream in (False, None):
            r = http.post(path, json={**BASE[path], "stream": stream, "stream_options": {"include_usage": True}})
            assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options"


def test_model_is_optional_and_checked(http) -> None:
    for path, body in BASE.items():
        r = http.post(path, json=body)
        assert r.status_code == 200 and r.json()["model"] == "tiny"
    r = http.post("/v1/completions", json={**BASE["/v1/completions"], "model": "other"})
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"


def test_models_version(http) -> None:
    listed = http.get("/v1/models").json()["data"]
    assert [m["id"] for m in listed] == ["tiny"] and listed[0]["max_model_len"] == 128
    card = http.get("/v1/models/tiny")
    assert card.status_code == 200 and card.json() == listed[0]
    missing = http.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "model"
    version = http.get("/version")
    assert version.status_code == 200 and isinstance(version.json()["version"], str)


def test_tokenize_and_detokenize(http) -> None:
    tok = byte_tokenizer()
    r = http.post("/tokenize", json={"prompt": "héllo", "return_token_strs": True}).json()
    want = tok.encode("héllo")
    assert r["tokens"] == want and r["count"] == len(want) and r["max_model_len"] == 128
    assert r["token_strs"] == tok.convert_ids_to_tokens(want)
    chat = http.post("/tokenize", json={"model": "tiny", "messages": MSG}).json()
    assert chat["tokens"] == apply_chat_template(tok, MSG)
    back = http.post("/detokenize", json={"tokens": chat["tokens"]}).json()
    assert back == {"prompt": tok.decode(chat["tokens"])}
    bad = http.post("/detokenize", json={"tokens": [10**6]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
    both = http.post("/tokenize", json={"prompt": "a", "messages": MSG})
    assert both.status_code == 400
    unknown = http.post("/tokenize", json={"prompt": "a", "zap": 1})
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "zap"
