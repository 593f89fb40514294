"""Process lifecycle: SIGTERM stops everything (no child left behind); a dead worker turns the server
unhealthy, fails requests with 503 and makes it exit non-zero."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import httpx
import pytest
from server_harness import ServerProcess, alive, descendants, group_members

pytestmark = pytest.mark.slow


def _long_stream(server: ServerProcess, first_chunk: threading.Event, result: dict) -> None:
    """Stream a long completion, note when the first chunk arrived, and record how the stream ended."""
    model = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]
    body = {"model": model, "prompt": "go", "max_tokens": 1000, "temperature": 0.0, "ignore_eos": True, "stream": True}
    events = []
    try:
        with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=30) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    events.append(line[6:])
                    first_chunk.set()
        result["events"] = events
    except httpx.HTTPError as exc:
        result["error"] = repr(exc)
        result["events"] = events
    finally:
        first_chunk.set()


def _start_stream(server: ServerProcess) -> tuple[threading.Thread, dict]:
    first, result = threading.Event(), {}
    thread = threading.Thread(target=_long_stream, args=(server, first, result), daemon=True)
    thread.start()
    assert first.wait(30), "no first chunk"
    return thread, result


def _wait_gone(pids: set[int], timeout: float = 20.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = {p for p in pids if alive(p)}
        if not left:
            return left
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


def test_sigterm_stops_all_processes(tiny_qwen3, tmp_path) -> None:
    server = ServerProcess(tiny_qwen3.path, tmp_path / "server.log", "--max-model-len", "1024")
    try:
        children = descendants(server.proc.pid)
        assert len(children) >= 3  # tokenizer, engine, detokenizer (+ multiprocessing's resource tracker)
        thread, result = _start_stream(server)
        start = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        server.proc.wait(15)
        assert time.monotonic() - start < 8, "shutdown took too long"
        assert server.proc.returncode == 0, server.log()
        assert _wait_gone(children) == set(), f"orphans left: {children}"
        thread.join(10)
        assert not thread.is_alive()  # the in-flight stream ended instead of hanging
        assert json.loads(result["events"][-1])["error"]["type"] == "service_unavailable_error"  # failed, not cut off
    finally:
        server.stop()


def test_dead_engine_fails_requests_with_503_and_exits(tiny_qwen3, tmp_path) -> None:
    server = ServerProcess(tiny_qwen3.path, tmp_path / "server.log", "--max-model-len", "1024")
    try:
        engine_pid = int(re.search(r"engine worker ready \(pid (\d+)\)", server.log()).group(1))
        children = descendants(server.proc.pid)
        assert engine_pid in children
        thread, result = _start_stream(server)
        model = httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]
        os.kill(engine_pid, signal.SIGKILL)
        thread.join(15)
        assert not thread.is_alive(), "in-flight stream hung after the engine died"
        last = json.loads(result["events"][-1])
        assert last["error"]["type"] == "service_unavailable_error", result
        status, body = server.get("/health")
        assert status == 503 and "engine" in json.loads(body)["error"]["message"]
        status, body = server.post("/v1/completions", {"model": model, "prompt": "hi", "max_tokens": 2})
        assert status == 503 and body["error"]["type"] == "service_unavailable_error"
        status, body = server.post("/generate", {"text": "hi"})
        assert status == 503 and body["error"]["type"] == "service_unavailable_error"
        assert server.proc.wait(15) == 1, server.log()
        assert _wait_gone(children) == set(), "workers left behind"
    finally:
        server.stop()


def test_engine_start_up_failure_is_reported(tiny_qwen3, tmp_path) -> None:
    with pytest.raises(RuntimeError, match="exited with 1 before ready") as err:
        ServerProcess(tiny_qwen3.path, tmp_path / "server.log", "--max-model-len", "100000")
    assert "the engine worker failed to start: ValueError: max_model_len 100000 exceeds" in str(err.value)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_start_up_stops_everything(tiny_qwen3, tmp_path, sig) -> None:
    server = ServerProcess(tiny_qwen3.path, tmp_path / "server.log", wait=False)
    try:
        deadline = time.monotonic() + 60
        while len(group_members(server.proc.pid)) < 4:  # the workers were spawned
            assert time.monotonic() < deadline and server.proc.poll() is None, server.log()
            time.sleep(0.05)
        server.proc.send_signal(sig)
        assert server.proc.wait(25) in (0, 130), server.log()  # generous: CI machines are loaded
        assert _wait_gone(group_members(server.proc.pid)) == set(), "workers left behind"
    finally:
        server.stop()
