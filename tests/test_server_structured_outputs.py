"""Structured outputs through a real server process with the stock ``openai`` client: ``response_format``
(JSON Schema, JSON object), vLLM's ``guided_*`` and SGLang's ``regex`` / ``ebnf`` / ``json_schema`` fields,
streaming and not, on chat and text completions; bad constraints are 400s naming the request's field."""

from __future__ import annotations

import importlib.util
import json
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import jsonschema
import pytest
from grammar_cases import CHOICES, REGEXES, SCHEMAS
from server_harness import ServerProcess

from minisgl_core.testing import byte_tokenizer, tiny_model_dir

openai = pytest.importorskip("openai")
pytest.importorskip("minisgl_xgrammar")
MSG = [{"role": "user", "content": "give me data"}]


HAVE_LLGUIDANCE = importlib.util.find_spec("minisgl_llguidance") is not None


@pytest.fixture(
    scope="module",
    params=["xgrammar", pytest.param("llguidance", marks=pytest.mark.skipif(not HAVE_LLGUIDANCE, reason="no plugin"))],
)
def server(tmp_path_factory, request):  # noqa: ANN001, ANN201
    """A server with each first-party grammar backend (every test below runs against both)."""
    model = tiny_model_dir("qwen3", eos_token_id=byte_tokenizer().eos_token_id)
    log = tmp_path_factory.mktemp("srv") / "server.log"
    srv = ServerProcess(model, log, "--served-model-name", "tiny", "--max-model-len", "512",
                        "--grammar-backend", request.param)  # fmt: skip
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):  # noqa: ANN001, ANN201
    return openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)


def _text(client, chat: bool, stream: bool, extra: dict, **kwargs) -> tuple[str, str]:  # noqa: ANN001
    """(text, finish_reason) of one request."""
    if chat:
        args = dict(model="tiny", messages=MSG, max_tokens=300, stream=stream, **kwargs)
        if not stream:
            choice = client.chat.completions.create(**args, extra_body=extra).choices[0]
            return choice.message.content, choice.finish_reason
        chunks = list(client.chat.completions.create(**args, extra_body=extra))
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), chunks[-1].choices[
            0
        ].finish_reason
    if "response_format" in kwargs:  # an extension on completions: the client has no parameter for it
        extra = {**extra, "response_format": kwargs.pop("response_format")}
    args = dict(model="tiny", prompt="data:", max_tokens=300, stream=stream, **kwargs)
    if not stream:
        choice = client.completions.create(**args, extra_body=extra).choices[0]
        return choice.text, choice.finish_reason
    chunks = list(client.completions.create(**args, extra_body=extra))
    return "".join(c.choices[0].text for c in chunks if c.choices), chunks[-1].choices[0].finish_reason


def test_json_schemas_regex_and_choices_streaming_and_not(client) -> None:  # noqa: ANN001
    jobs = []  # (check, chat, stream, extra_body, kwargs)
    for i, schema in enumerate(SCHEMAS):
        rf = {"type": "json_schema", "json_schema": {"name": f"s{i}", "schema": schema, "strict": True}}
        field = [("response_format", rf), ("guided_json", schema), ("json_schema", json.dumps(schema))][i % 3]
        extra = {} if field[0] == "response_format" else {field[0]: field[1]}
        kwargs = {"response_format": rf} if field[0] == "response_format" else {}
        jobs.append((("schema", schema), i % 2 == 0, i % 4 < 2, extra, {"seed": i, **kwargs}))
    for i, pattern in enumerate(REGEXES):
        jobs.append((("regex", pattern), i % 2 == 0, i < 2, {["guided_regex", "regex"][i % 2]: pattern}, {}))
    for i, choices in enumerate(CHOICES):
        jobs.append((("choice", choices), i % 2 == 1, i == 0, {"guided_choice": choices}, {"seed": i}))
    jobs.append((("regex", r"\((a|b)+\)"), True, True, {"guided_grammar": 'root ::= "(" [ab]+ ")"'}, {}))
    jobs.append((("regex", r"\[(x|y)\]"), False, False, {"ebnf": 'root ::= "[" ("x" | "y") "]"'}, {}))
    tok = byte_tokenizer()  # free keys from a random model would rarely close without a nudge
    closing = {str(tok.convert_tokens_to_ids(ch)): 8.0 for ch in '"}'}
    jobs.append((("object", None), True, False, {}, {"response_format": {"type": "json_object"}, "seed": 1,
                                                     "logit_bias": closing}))  # fmt: skip

    def run(job):  # noqa: ANN001, ANN202
        check, chat, stream, extra, kwargs = job
        return job, _text(client, chat, stream, extra, **kwargs)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, jobs))
    for (check, chat, stream, extra, _), (text, finish) in results:
        where = f"{check[0]} chat={chat} stream={stream} {extra}: {text!r}"
        assert finish == "stop", where
        if check[0] == "schema":
            jsonschema.validate(json.loads(text), check[1])
        elif check[0] == "regex":
            assert re.fullmatch(check[1], text), where
        elif check[0] == "choice":
            assert text in check[1], where
        else:
            assert isinstance(json.loads(text), dict), where


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    "path,body,param",
    [
        ("/v1/chat/completions", {"response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "no-such-type"}}}}, "response_format"),
        ("/v1/chat/completions", {"guided_regex": "[a-"}, "guided_regex"),
        ("/v1/completions", {"guided_grammar": "root ::= missing"}, "guided_grammar"),
        ("/v1/completions", {"regex": "(", "stop": "x"}, "regex"),
        ("/v1/completions", {"guided_json": "{not json"}, "guided_json"),
        ("/v1/chat/completions", {"guided_choice": ["a"], "regex": "a"}, "guided_choice"),
        ("/v1/chat/completions", {"response_format": {"type": "json_schema"}}, "response_format"),
    ],
)  # fmt: skip
def test_bad_constraints_are_400_naming_the_field(server, path: str, body: dict, param: str, stream: bool) -> None:  # noqa: ANN001
    base = {"messages": MSG} if "chat" in path else {"prompt": "x"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post(path, json={**base, "max_tokens": 4, "stream": stream, **body})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param, r.json()
        ok = http.post(path, json={**base, "max_tokens": 4, "guided_choice": ["fine"]})  # the server goes on
        assert ok.status_code == 200, ok.text
