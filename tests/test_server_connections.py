"""Idle connections (issue 15, item 4): a flood of sockets that send nothing must not stop normal requests,
even with a low open-file limit; idle connections are closed after --idle-timeout."""

from __future__ import annotations

import resource
import socket
import time
from urllib.parse import urlparse

import pytest
from server_harness import ServerProcess

FLOOD = 2000
NOFILE = 512  # the server's open-file limit: far fewer than the flood


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    srv = ServerProcess(tiny_qwen3.path, tmp_path_factory.mktemp("conn") / "server.log", "--idle-timeout", "3",
                        "--served-model-name", "tiny", nofile=NOFILE)  # fmt: skip
    yield srv
    srv.stop()


def _complete(srv) -> int:
    body = {"model": "tiny", "prompt": "hi", "max_tokens": 2}
    return srv.post("/v1/completions", body)[0]


def test_idle_socket_flood_does_not_stop_a_normal_request(server) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < FLOOD + 200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, FLOOD + 500), hard))
    url = urlparse(server.url)
    flood = []
    try:
        for _ in range(FLOOD):
            flood.append(socket.create_connection((url.hostname, url.port), timeout=10))
        start = time.monotonic()
        assert _complete(server) == 200  # while every flood socket is still open on our side
        assert time.monotonic() - start < 2.5  # served at once: not after the idle timeout freed room
        log = server.log()
        assert "connection limit reached" in log and "at most 384 client connections (open-file limit 512)" in log
        # a connection that never sends a request is closed after --idle-timeout
        last = flood[-1]
        last.settimeout(8)
        assert last.recv(1) == b""  # the newest flood socket: never evicted, closed by the timeout
    finally:
        for s in flood:
            s.close()
    assert _complete(server) == 200
    assert "Traceback" not in server.log() and "Too many open files" not in server.log()


def test_keep_alive_connection_survives_between_requests_within_the_timeout(server) -> None:
    import http.client
    import json

    url = urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    for _ in range(2):
        conn.request("POST", "/v1/completions", json.dumps({"model": "tiny", "prompt": "hi", "max_tokens": 2}),
                     {"Content-Type": "application/json"})  # fmt: skip
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        time.sleep(1)
    conn.close()
