"""Bad input never hurts the server: each malformed request gets the right 4xx and OpenAI-style error JSON."""

from __future__ import annotations

import pytest
from server_harness import ServerProcess, request

KEY = "sekret"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_LEN = 64


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    srv = ServerProcess(
        tiny_qwen3.path, tmp_path_factory.mktemp("srv") / "server.log",
        "--max-model-len", str(MAX_LEN), "--api-key", KEY, "--max-request-bytes", "65536",
        "--served-model-name", "tiny",
    )  # fmt: skip
    yield srv
    srv.stop()


CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
MSG = [{"role": "user", "content": "hi"}]


def chat(**kw):
    return {"model": "tiny", "messages": MSG, "max_tokens": 2, **kw}


def comp(**kw):
    return {"model": "tiny", "prompt": "hi", "max_tokens": 2, **kw}


CASES = [
    # (name, path, body, status, param)
    ("malformed json", CHAT, b'{"model": "tiny", "messages": [', 400, None),
    ("not an object", CHAT, b"[1, 2]", 400, None),
    ("empty body", COMP, b"", 400, None),
    ("messages wrong type", CHAT, chat(messages="hi"), 400, "messages"),
    ("model wrong type", CHAT, chat(model=5), 400, "model"),
    ("max_tokens as string", CHAT, chat(max_tokens="2"), 400, "max_tokens"),
    ("max_tokens zero", COMP, comp(max_tokens=0), 400, "max_tokens"),
    ("max_tokens beyond 64 bits", COMP, comp(max_tokens=2**70), 400, "max_tokens"),
    ("token id beyond 64 bits", COMP, comp(prompt=[2**70]), 400, "prompt"),
    ("top_k beyond 64 bits", CHAT, chat(top_k=2**70), 400, "top_k"),
    ("negative temperature", CHAT, chat(temperature=-1), 400, "temperature"),
    ("top_p zero", COMP, comp(top_p=0), 400, "top_p"),
    ("top_k below -1", COMP, comp(top_k=-5), 400, "top_k"),
    ("min_p above 1", COMP, comp(min_p=1.5), 400, "min_p"),
    ("n zero", CHAT, chat(n=0), 400, "n"),
    ("n huge", CHAT, chat(n=100000), 400, "n"),
    ("presence penalty", CHAT, chat(presence_penalty=5), 400, "presence_penalty"),
    ("repetition penalty", COMP, comp(repetition_penalty=0), 400, "repetition_penalty"),
    ("top_logprobs too many", CHAT, chat(logprobs=True, top_logprobs=50), 400, "top_logprobs"),
    ("logprobs wrong type", COMP, comp(logprobs="yes"), 400, "logprobs"),
    ("empty stop string", COMP, comp(stop=[""]), 400, None),
    ("negative stop token", COMP, comp(stop_token_ids=[-1]), 400, None),
    ("seed as float", COMP, comp(seed=1.5), 400, "seed"),
    ("unknown model", CHAT, chat(model="gpt-4"), 404, "model"),
    ("empty messages", CHAT, chat(messages=[]), 400, "messages"),
    ("missing messages", CHAT, {"model": "tiny"}, 400, "messages"),
    ("bad role", CHAT, chat(messages=[{"role": 5, "content": "x"}]), 400, None),  # any string role goes to the template
    ("image content", CHAT, chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400, None),
    ("empty prompt", COMP, comp(prompt=""), 400, "prompt"),
    ("empty token list", COMP, comp(prompt=[]), 400, "prompt"),
    ("token id out of vocab", COMP, comp(prompt=[1, 10**7]), 400, "prompt"),
    ("negative token id", COMP, comp(prompt=[-3]), 400, None),
    ("prompt longer than context", COMP, comp(prompt=[5] * MAX_LEN), 400, "prompt"),
    ("chat longer than context", CHAT, chat(messages=[{"role": "user", "content": "x" * 200}]), 400, "messages"),
    ("max_tokens beyond context", COMP, comp(prompt=[5, 6, 7], max_tokens=MAX_LEN), 400, "max_tokens"),
    ("max_completion_tokens beyond", CHAT, chat(max_completion_tokens=10 * MAX_LEN), 400, "max_tokens"),
    ("min_tokens beyond max_tokens", COMP, comp(min_tokens=5), 400, "min_tokens"),
    # without max_tokens it defaults to the room left, known only after tokenizing (the engine must never see it)
    ("min_tokens beyond the context", COMP, {"prompt": "hi", "min_tokens": 10 * MAX_LEN}, 400, "min_tokens"),
    ("chat min_tokens beyond the context", CHAT, {"messages": MSG, "min_tokens": 10 * MAX_LEN}, 400, "min_tokens"),
    ("generate text and ids", "/generate", {"text": "a", "input_ids": [1]}, 400, "text"),
    ("generate neither", "/generate", {}, 400, "text"),
    ("generate unknown field", "/generate", {"text": "a", "sampling_params": {"bogus": 1}}, 400, None),
    ("oversized body", COMP, comp(prompt="x" * 70000), 413, None),
]


def check_error(status: int, body: dict, want_status: int, want_param: str | None) -> None:
    assert status == want_status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"] and isinstance(err["type"], str)
    if want_param is not None:
        assert err["param"] is not None and err["param"].split(".")[0] == want_param, err


@pytest.mark.parametrize("name, path, body, status, param", CASES, ids=[c[0] for c in CASES])
def test_bad_request(server, name, path, body, status, param) -> None:
    got_status, got = server.post(path, body, AUTH)
    check_error(got_status, got, status, param)


def test_streaming_errors_are_plain_http_errors(server) -> None:
    status, body = server.post(COMP, comp(prompt=[5] * MAX_LEN, stream=True), AUTH)
    check_error(status, body, 400, "prompt")


def test_auth_routes_and_methods(server) -> None:
    status, body = server.post(COMP, comp())
    check_error(status, body, 401, None)
    status, body = server.post(COMP, comp(), {"Authorization": "Bearer wrong"})
    check_error(status, body, 401, None)
    assert server.get("/v1/models")[0] == 401 and server.get("/v1/models", AUTH)[0] == 200
    assert server.get("/health")[0] == 200 and server.get("/metrics")[0] == 200  # operations stay open
    status, text = server.get("/v1/chat/completions", AUTH)
    assert status == 405 and '"error"' in text
    status, text = server.get("/nope", AUTH)
    assert status == 404 and '"error"' in text


def test_still_healthy_after_bad_input(server) -> None:
    for _, path, body, _, _ in CASES:
        server.post(path, body, AUTH)
    assert server.get("/health")[0] == 200
    status, body = server.post(COMP, comp(max_tokens=3, ignore_eos=True), AUTH)
    assert status == 200 and body["usage"]["completion_tokens"] == 3
    server.wait_idle()


def test_openapi_property_based(server) -> None:
    """schemathesis generates schema-valid bodies for every operation: never a server error."""
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    status, raw = request(server.url + "/openapi.json")
    assert status == 200
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    for op in schema.get_all_operations():
        operation = op.ok()

        @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case) -> None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = "tiny"  # a served name, so generation paths are reached too
            case.call_and_validate(base_url=server.url, headers=AUTH, checks=[not_a_server_error], timeout=60)

        check()
    assert server.get("/health")[0] == 200
    server.wait_idle()
