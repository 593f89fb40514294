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
                        "--keep-alive-timeout", "2", "--served-model-name", "tiny", nofile=NOFILE)  # fmt: skip
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


def _request(conn: socket.socket) -> bytes:
    body = b'{"model": "tiny", "prompt": "hi", "max_tokens": 2}'
    conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_keep_alive_and_half_sent_heads_are_closed_in_time(server) -> None:
    url = urlparse(server.url)
    conn = socket.create_connection((url.hostname, url.port), timeout=10)
    for _ in range(2):  # a keep-alive connection serves requests 1 s apart (under --keep-alive-timeout 2)
        assert _request(conn).startswith(b"HTTP/1.1 200")
        time.sleep(1)
    start = time.monotonic()
    assert conn.recv(1) == b""  # then idle: closed after --keep-alive-timeout
    assert time.monotonic() - start < 4
    conn.close()
    slow = socket.create_connection((url.hostname, url.port), timeout=10)  # half a head, then nothing
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
    assert slow.recv(1) == b""
    slow.close()
    again = socket.create_connection((url.hostname, url.port), timeout=10)  # half of a second request's head
    assert _request(again).startswith(b"HTTP/1.1 200")
    again.sendall(b"POST /v1/completions HTTP/1.1\r\n")
    start = time.monotonic()
    assert again.recv(1) == b""
    assert 2 < time.monotonic() - start < 6  # --idle-timeout 3
    again.close()
