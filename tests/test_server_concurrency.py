"""Many concurrent streaming clients, some of which disconnect: the rest complete, and no KV page leaks."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest
from server_harness import ServerProcess

NUM_CLIENTS = 32
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    srv = ServerProcess(tiny_qwen3.path, tmp_path_factory.mktemp("srv") / "server.log", "--max-model-len", "1024")
    yield srv
    srv.stop()


def _model(server: ServerProcess) -> str:
    return httpx.get(server.url + "/v1/models", timeout=10).json()["data"][0]["id"]


def test_concurrent_streams_with_disconnects(server) -> None:
    model = _model(server)
    dropped = {i for i in range(NUM_CLIENTS) if i % 4 == 1}

    async def run() -> list[tuple[str | None, str]]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", timeout=120, max_retries=0)

        async def one(i: int) -> tuple[str | None, str]:
            stream = await client.completions.create(
                model=model, prompt=f"client {i} says", temperature=0.0, stream=True,
                max_tokens=1000 if i in dropped else MAX_TOKENS,  # the dropped ones would run for long
                extra_body={"ignore_eos": True},
            )  # fmt: skip
            text, finish = "", None
            async for chunk in stream:
                text += chunk.choices[0].text
                finish = chunk.choices[0].finish_reason or finish
                if i in dropped:
                    await stream.close()  # the client goes away mid-stream
                    return "dropped", text
            return finish, text

        try:
            return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(NUM_CLIENTS))), 120)
        finally:
            await client.close()

    results = asyncio.run(run())
    for i, (finish, _) in enumerate(results):
        assert finish == ("dropped" if i in dropped else "length"), (i, finish)
    # every completed stream carries the full greedy answer
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", timeout=60, max_retries=0)
    for i in (0, 2, NUM_CLIENTS - 1):
        ref = client.completions.create(
            model=model,
            prompt=f"client {i} says",
            max_tokens=MAX_TOKENS,
            temperature=0.0,
            extra_body={"ignore_eos": True},
        )
        assert results[i][1] == ref.choices[0].text
    metrics = server.wait_idle()
    assert metrics["minisgl_kv_pages_used"] == 0
    assert metrics["minisgl_kv_pages_free"] + metrics["minisgl_kv_pages_cached"] == metrics["minisgl_kv_pages_total"]
    assert metrics["minisgl_num_aborted_requests_total"] == len(dropped)
    assert server.get("/health")[0] == 200


def test_non_streaming_client_that_gives_up_is_aborted(server) -> None:
    model = _model(server)
    before = server.metrics()["minisgl_num_aborted_requests_total"]
    body = {"model": model, "prompt": "slow", "max_tokens": 1000, "n": 4, "temperature": 0.0, "ignore_eos": True}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json=body, timeout=httpx.Timeout(10, read=0.3))
    metrics = server.wait_idle()
    assert metrics["minisgl_num_aborted_requests_total"] == before + 4
    assert metrics["minisgl_kv_pages_used"] == 0
