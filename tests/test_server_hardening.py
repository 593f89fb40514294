"""Server hardening (issue 15) against a real server process: bounded stop matching, readable errors, bad text,
client disconnects before the first token, auth from a file or the environment."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time
from urllib.parse import urlparse

import pytest
from server_harness import ServerProcess

KEY = "s3cret-from-env"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = "/v1/chat/completions"
COMP = "/v1/completions"
MAX_STOPS, MAX_STOP_CHARS = 4, 64


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    os.environ["MINISGL_API_KEY"] = KEY  # the server process inherits it; it is not on the command line
    try:
        srv = ServerProcess(
            tiny_qwen3.path, tmp_path_factory.mktemp("srv") / "server.log", "--max-model-len", "64",
            "--served-model-name", "tiny", "--max-stop-strings", str(MAX_STOPS), "--max-stop-chars",
            str(MAX_STOP_CHARS), "--max-stop-regex", "2", "--max-stop-regex-chars", "40", "--protect-metrics",
        )  # fmt: skip
    finally:
        del os.environ["MINISGL_API_KEY"]
    yield srv
    srv.stop()


def chat(**kw):
    return {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, **kw}


def comp(**kw):
    return {"model": "tiny", "prompt": "hi", "max_tokens": 2, **kw}


def post(server, path, body, headers=None):
    return server.post(path, body, {**AUTH, **(headers or {})})


def error(status, body, want_status, want_param):
    assert status == want_status, body
    err = body["error"]
    assert err["param"] == want_param, err
    assert err["code"] is None or isinstance(err["code"], str), err  # OpenAI: a string or null
    return err["message"]


# -- item 7: small deviations -----------------------------------------------------------------------------


def test_top_logprobs_needs_logprobs(server) -> None:
    msg = error(*post(server, CHAT, chat(top_logprobs=2)), 400, "top_logprobs")
    assert "logprobs" in msg
    assert post(server, CHAT, chat(logprobs=True, top_logprobs=2))[0] == 200


def test_user_message_without_content(server) -> None:
    body = chat(messages=[{"role": "user", "content": None}])
    error(*post(server, CHAT, body), 400, "messages.0.content")


def test_stop_token_ids_outside_vocabulary(server) -> None:
    error(*post(server, COMP, comp(stop_token_ids=[5, 10**6])), 400, "stop_token_ids")
    body = {"text": "hi", "sampling_params": {"max_new_tokens": 2, "stop_token_ids": [10**6]}}
    error(*post(server, "/generate", body), 400, "sampling_params.stop_token_ids")


def test_union_errors_read_like_a_sentence(server) -> None:
    msg = error(*post(server, COMP, comp(prompt=5)), 400, "prompt")
    assert msg == "prompt: must be a string, a list of strings, a list of token ids or a list of token-id lists"
    msg = error(*post(server, COMP, comp(prompt=[1, -3])), 400, "prompt")
    assert msg.endswith("(prompt[1]: Input should be greater than or equal to 0)") and "more error" not in msg
    msg = error(*post(server, COMP, comp(stop=[""])), 400, "stop")
    assert "stop[0]: String should have at least 1 character" in msg
    msg = error(*post(server, CHAT, chat(messages=[{"role": "user", "content": 7}])), 400, "messages.0.content")
    assert "must be a string or a list of text parts" in msg


def test_error_code_is_a_string_or_null(server) -> None:
    status, body = post(server, CHAT, chat(model="gpt-4"))
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = post(server, COMP, comp(max_tokens=0))
    assert status == 400 and body["error"]["code"] is None
    status, body = server.post(COMP, comp())
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


# -- item 1: stop limits, stop_regex, matched_stop ---------------------------------------------------------


def test_stop_limits(server) -> None:
    msg = error(*post(server, COMP, comp(stop=["a", "b", "c", "d", "e"])), 400, "stop")
    assert f"at most {MAX_STOPS}" in msg and "--max-stop-strings" in msg
    msg = error(*post(server, COMP, comp(stop=["x" * 40, "y" * 40])), 400, "stop")
    assert f"at most {MAX_STOP_CHARS} characters" in msg
    msg = error(*post(server, CHAT, chat(stop_regex=["a", "b", "c"])), 400, "stop_regex")
    assert "at most 2" in msg
    error(*post(server, COMP, comp(stop_regex="(unclosed")), 400, "stop_regex")
    body = {"text": "hi", "sampling_params": {"stop": ["a"] * 5}}
    error(*post(server, "/generate", body), 400, "sampling_params.stop")
    assert post(server, COMP, comp(stop=["a", "b", "c", "d"]))[0] == 200


def _greedy_text(server, n: int = 12) -> tuple[str, list]:
    status, body = post(server, COMP, comp(prompt=[5, 6, 7], max_tokens=n, temperature=0, ignore_eos=True))
    assert status == 200, body
    return body["choices"][0]["text"], body["choices"][0]


def test_stop_regex_and_matched_stop(server) -> None:
    text, choice = _greedy_text(server)
    assert choice["finish_reason"] == "length" and choice["matched_stop"] is None
    assert len(text) >= 6, text
    target = text[3:5]
    pattern = re.escape(target)
    for path, body in ((COMP, comp(prompt=[5, 6, 7], max_tokens=12, temperature=0, ignore_eos=True)),):
        status, out = post(server, path, {**body, "stop_regex": pattern})
        assert status == 200, out
        c = out["choices"][0]
        assert c["finish_reason"] == "stop" and c["matched_stop"] == pattern
        assert c["text"] == text[: text.index(target) + len(target)]  # a pattern's match stays (as in SGLang)
        status, out = post(server, path, {**body, "stop": [target]})
        c = out["choices"][0]
        assert c["finish_reason"] == "stop" and c["matched_stop"] == target
        assert c["text"] == text[: text.index(target)]  # a stop string does not
        status, out = post(server, path, {**body, "stop": [target], "stream": True})
        events = [json.loads(line[6:]) for line in out["raw"].splitlines() if line.startswith("data: {")]
        last = [e["choices"][0] for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
        assert last[-1]["matched_stop"] == target and last[-1]["finish_reason"] == "stop"
        assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == c["text"]
    # a stop token: its id is the matched stop, as SGLang reports it
    status, out = post(server, COMP, comp(prompt=[5, 6, 7], max_tokens=12, temperature=0, ignore_eos=True,
                                          stop_token_ids=[_first_token(server)]))  # fmt: skip
    c = out["choices"][0]
    assert c["finish_reason"] == "stop" and c["matched_stop"] == _first_token(server)
    status, out = post(server, CHAT, chat(stop_regex=pattern, max_tokens=3))
    assert status == 200 and "matched_stop" in out["choices"][0]


def _first_token(server) -> int:
    status, body = post(server, "/generate", {"input_ids": [5, 6, 7], "sampling_params": {
        "max_new_tokens": 1, "temperature": 0.0, "ignore_eos": True}})  # fmt: skip
    assert status == 200, body
    return body["output_ids"][0]


# -- item 3: lone surrogates -------------------------------------------------------------------------------


def _raw(conn: http.client.HTTPConnection, path: str, payload: bytes) -> tuple[int, dict]:
    conn.request("POST", path, payload, {"Content-Type": "application/json", **AUTH})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read())


def test_lone_surrogate_is_a_400_and_the_connection_lives_on(server) -> None:
    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    cases = [
        (COMP, b'{"model": "tiny", "max_tokens": 2, "prompt": "a\\ud800b"}', "prompt"),
        (COMP, b'{"model": "tiny", "max_tokens": 2, "prompt": ["ok", "\\udfff"]}', "prompt"),
        (CHAT, b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": "\\ud800"}]}',
         "messages.0.content"),
        (CHAT, b'{"model": "tiny", "max_tokens": 2, "messages": [{"role": "user", "content": '
               b'[{"type": "text", "text": "\\ud800"}]}]}', "messages.0.content"),
        (COMP, b'{"model": "tiny", "max_tokens": 2, "prompt": "a", "stop": ["\\ud800"]}', "stop"),
        ("/generate", b'{"text": "\\ud800"}', "text"),
        (COMP, b'{"model": "tiny\\ud800", "max_tokens": 2, "prompt": "a"}', "model"),
    ]  # fmt: skip
    for path, payload, param in cases:
        status, body = _raw(conn, path, payload)
        error(status, body, 404 if param == "model" else 400, param)
        assert param == "model" or "surrogate" in body["error"]["message"] or "unicode" in body["error"]["message"]
        status, body = _raw(conn, COMP, json.dumps(comp()).encode())  # the same keep-alive connection
        assert status == 200, body
    conn.close()
    m = server.metrics(AUTH)
    assert m["minisgl_api_pending_requests"] == 0
    assert "Traceback" not in server.log()


# -- item 6: auth ------------------------------------------------------------------------------------------


def test_bearer_scheme_is_case_insensitive_and_key_comes_from_the_environment(server) -> None:
    for scheme in ("bearer", "BEARER", "Bearer", "bEaReR"):
        status, body = server.post(COMP, comp(), {"Authorization": f"{scheme} {KEY}"})
        assert status == 200, (scheme, body)
    for wrong in (f"Basic {KEY}", KEY, f"Bearer {KEY}x", "Bearer"):
        assert server.post(COMP, comp(), {"Authorization": wrong})[0] == 401, wrong
    cmdline = open(f"/proc/{server.proc.pid}/cmdline", "rb").read()
    assert KEY.encode() not in cmdline


def test_metrics_behind_the_key(server) -> None:
    status, _ = server.get("/metrics")
    assert status == 401
    status, text = server.get("/metrics", {"Authorization": f"bearer {KEY}"})
    assert status == 200 and "minisgl_api_pending_requests" in text
    assert server.get("/health")[0] == 200  # liveness stays open


# -- item 2: a client that leaves before its first token ----------------------------------------------------


def _engine_pid(server) -> int:
    match = re.search(r"engine worker ready \(pid (\d+)\)", server.log())
    assert match, server.log()
    return int(match.group(1))


def test_disconnect_before_first_token_is_quiet_and_frees_everything(server) -> None:
    url = urlparse(server.url)
    before = server.metrics(AUTH)
    log_start = len(server.log())
    engine = _engine_pid(server)
    os.kill(engine, signal.SIGSTOP)  # nothing can produce a first token until SIGCONT
    socks = []
    try:
        for i in range(6):
            body = json.dumps(comp(max_tokens=8, stream=i % 2 == 0, n=1 + i % 3)).encode()
            head = (f"POST {COMP} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n").encode()  # fmt: skip
            s = socket.create_connection((url.hostname, url.port))
            s.sendall(head + body)
            socks.append(s)
        time.sleep(1.0)  # submitted and waiting for the first output
        for s in socks:
            s.close()
        time.sleep(1.0)
    finally:
        os.kill(engine, signal.SIGCONT)
    m = server.wait_idle(headers=AUTH)
    assert m["minisgl_api_pending_requests"] == 0
    aborted = "minisgl_num_aborted_requests_total"
    assert m[aborted] - before[aborted] == sum(1 + i % 3 for i in range(6))
    log = server.log()[log_start:]
    assert "Traceback" not in log and "ERROR" not in log, log
    assert log.count("client disconnected before its first token") == 6, log
    assert post(server, COMP, comp())[0] == 200


# -- item 5: engine heartbeat; item 6: the key from a file ---------------------------------------------------


@pytest.fixture(scope="module")
def hb_server(tiny_qwen3, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hb")
    (folder / "key").write_text(f"  {KEY}-file\n")
    srv = ServerProcess(tiny_qwen3.path, folder / "server.log", "--engine-timeout", "2", "--api-key-file",
                        str(folder / "key"), "--served-model-name", "tiny")  # fmt: skip
    yield srv
    srv.stop()


def _head(url: str, path: str) -> int:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("HEAD", path)
    resp = conn.getresponse()
    assert resp.read() == b""
    conn.close()
    return resp.status


def test_hung_engine_turns_health_and_pending_requests_to_503(hb_server) -> None:
    srv, auth = hb_server, {"Authorization": f"Bearer {KEY}-file"}
    assert srv.post(COMP, comp(), auth)[0] == 200 and srv.post(COMP, comp(), AUTH)[0] == 401  # key from the file
    assert srv.get("/health")[0] == 200 and _head(srv.url, "/health") == 200
    time.sleep(3)  # idle longer than --engine-timeout: an idle engine still beats
    assert srv.get("/health")[0] == 200
    engine = _engine_pid(srv)
    os.kill(engine, signal.SIGSTOP)
    try:
        start = time.monotonic()
        status, body = srv.post(COMP, comp(max_tokens=4), auth)  # would hang until the client gave up
        waited = time.monotonic() - start
        assert status == 503 and "engine" in body["error"]["message"], body
        assert waited < 6, waited
        status, text = srv.get("/health")
        assert status == 503 and "--engine-timeout" in text
        assert _head(srv.url, "/health") == 503
        assert srv.post(COMP, comp(), auth)[0] == 503  # new requests too, at once
    finally:
        os.kill(engine, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while srv.get("/health")[0] != 200:
        assert time.monotonic() < deadline, srv.log()
        time.sleep(0.2)
    status, body = srv.post(COMP, comp(max_tokens=3, ignore_eos=True), auth)
    assert status == 200 and body["usage"]["completion_tokens"] == 3
    m = srv.wait_idle()
    assert m["minisgl_api_pending_requests"] == 0
    assert "Traceback" not in srv.log()
