"""The OpenAI-compatible API through the official ``openai`` client against a real server process."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from server_harness import ServerProcess, request

from minisgl_core import LLM, SamplingParams
from minisgl_core.text import apply_chat_template

GREEDY = {"temperature": 0.0}
NO_EOS = {"ignore_eos": True}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    srv = ServerProcess(tiny_qwen3.path, tmp_path_factory.mktemp("srv") / "server.log", "--max-model-len", "256")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def model(server) -> str:
    return json.loads(server.get("/v1/models")[1])["data"][0]["id"]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=60, max_retries=0)


@pytest.fixture(scope="module")
def llm(tiny_qwen3) -> LLM:
    return LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_model_len=256)


def test_health_and_models(server, tiny_qwen3) -> None:
    assert server.get("/health") == (200, '{"status":"ok"}')
    models = json.loads(server.get("/v1/models")[1])
    assert models["data"][0]["id"] == str(tiny_qwen3.path) and models["data"][0]["max_model_len"] == 256


def test_chat_usage_counts_real_tokens(client, model, llm) -> None:
    out = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=7, extra_body=NO_EOS, **GREEDY)
    assert len(out.choices) == 1 and out.choices[0].finish_reason == "length"
    assert out.choices[0].message.role == "assistant"
    prompt_ids = apply_chat_template(llm.tokenizer, MESSAGES)
    assert out.usage.prompt_tokens == len(prompt_ids)
    assert out.usage.completion_tokens == 7 and out.usage.total_tokens == len(prompt_ids) + 7
    want = llm.generate(prompt_ids, SamplingParams(max_tokens=7, ignore_eos=True, **GREEDY))[0]
    assert out.choices[0].message.content == want.text
    again = client.chat.completions.create(
        model=model, messages=MESSAGES, max_completion_tokens=7, extra_body=NO_EOS, **GREEDY
    )
    assert again.choices[0].message.content == want.text


def test_greedy_completion_equals_offline_llm(client, model, llm, server) -> None:
    for prompt in ["Hello, my name is", "The capital of France"]:
        want = llm.generate(prompt, SamplingParams(max_tokens=16, ignore_eos=True, **GREEDY))[0]
        out = client.completions.create(model=model, prompt=prompt, max_tokens=16, extra_body=NO_EOS, **GREEDY)
        assert out.choices[0].text == want.text
        assert out.usage.prompt_tokens == len(want.prompt_token_ids) and out.usage.completion_tokens == 16
        ids = client.completions.create(
            model=model, prompt=want.prompt_token_ids, max_tokens=16, **GREEDY, extra_body=NO_EOS
        )
        assert ids.choices[0].text == want.text
        status, native = server.post(
            "/generate",
            {
                "input_ids": want.prompt_token_ids,
                "sampling_params": {"max_new_tokens": 16, "temperature": 0.0, "ignore_eos": True},
            },
        )
        assert status == 200 and native["output_ids"] == want.token_ids and native["text"] == want.text
        assert native["meta_info"]["completion_tokens"] == 16 and native["meta_info"]["finish_reason"] == "length"


def test_streaming_matches_non_streaming(client, model) -> None:
    kw = dict(model=model, max_tokens=12, extra_body=NO_EOS, **GREEDY)
    full = client.chat.completions.create(messages=MESSAGES, **kw)
    chunks = list(
        client.chat.completions.create(messages=MESSAGES, stream=True, stream_options={"include_usage": True}, **kw)
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    assert chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    plain = client.completions.create(prompt="Once upon", **kw)
    streamed = list(client.completions.create(prompt="Once upon", stream=True, **kw))
    assert "".join(c.choices[0].text for c in streamed) == plain.choices[0].text
    assert all(c.usage is None for c in streamed)  # no include_usage: no usage chunk


def test_n_choices_with_seed(client, model) -> None:
    kw = dict(model=model, prompt="abc", max_tokens=10, n=2, temperature=1.0, seed=7, extra_body=NO_EOS)
    out = client.completions.create(**kw)
    assert sorted(c.index for c in out.choices) == [0, 1]
    assert out.usage.completion_tokens == 20 and out.usage.prompt_tokens == 3
    assert out.choices[0].text != out.choices[1].text  # seed + i per choice
    again = client.completions.create(**kw)
    assert [c.text for c in again.choices] == [c.text for c in out.choices]
    chat = client.chat.completions.create(model=model, messages=MESSAGES, n=2, max_tokens=4, stream=True, **GREEDY)
    texts = {0: "", 1: ""}
    for chunk in chat:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
    assert texts[0] == texts[1]  # greedy choices agree


def test_stop_strings_are_trimmed_across_tokens(client, model) -> None:
    kw = dict(model=model, max_tokens=24, extra_body=NO_EOS, **GREEDY)
    full = client.completions.create(prompt="The", **kw).choices[0].text
    stop = full[4:7]  # three bytes = three tokens of the byte-level tokenizer
    out = client.completions.create(prompt="The", stop=[stop], **kw)
    assert out.choices[0].finish_reason == "stop" and out.choices[0].text == full[: full.index(stop)]
    streamed = list(client.completions.create(prompt="The", stop=stop, stream=True, **kw))
    assert "".join(c.choices[0].text for c in streamed) == full[: full.index(stop)]
    assert streamed[-1].choices[0].finish_reason == "stop"


def test_stop_token_ids(client, model, llm) -> None:
    ref = llm.generate("Hi", SamplingParams(max_tokens=12, ignore_eos=True, **GREEDY))[0].token_ids
    target = ref[4]
    out = client.completions.create(
        model=model, prompt="Hi", max_tokens=12, extra_body={"stop_token_ids": [target]}, **GREEDY
    )
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens == ref.index(target) + 1


def test_async_client_concurrent(server, model) -> None:
    async def run() -> list[str]:
        client = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", timeout=60, max_retries=0)

        async def chat(i: int) -> str:
            stream = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": f"hi {i}"}], max_tokens=6, stream=True, **GREEDY
            )
            return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

        async def complete(i: int) -> str:
            out = await client.completions.create(model=model, prompt=f"hi {i}", max_tokens=6, **GREEDY)
            return out.choices[0].text

        results = await asyncio.gather(*[chat(i) for i in range(4)], *[complete(i) for i in range(4)])
        await client.close()
        return results

    results = asyncio.run(run())
    assert len(results) == 8 and all(isinstance(r, str) for r in results)


def test_logprobs(client, model) -> None:
    out = client.chat.completions.create(
        model=model, messages=MESSAGES, max_tokens=5, logprobs=True, top_logprobs=3, extra_body=NO_EOS, **GREEDY
    )
    content = out.choices[0].logprobs.content
    assert len(content) == 5
    for entry in content:
        tops = [t.logprob for t in entry.top_logprobs]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert entry.logprob == pytest.approx(tops[0], abs=1e-4) and entry.logprob <= 0.0
        assert entry.token == entry.top_logprobs[0].token
    comp = client.completions.create(model=model, prompt="Hi", max_tokens=4, logprobs=2, extra_body=NO_EOS, **GREEDY)
    lp = comp.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4
    assert all(len(t) <= 2 for t in lp.top_logprobs) and lp.text_offset[0] == 0


def test_penalties_change_greedy_output(client, model) -> None:
    kw = dict(model=model, prompt="aaaa", max_tokens=32, **GREEDY)
    base = client.completions.create(**kw, extra_body=NO_EOS).choices[0].text
    rep = client.completions.create(**kw, extra_body={**NO_EOS, "repetition_penalty": 5.0}).choices[0].text
    freq = client.completions.create(**kw, frequency_penalty=2.0, presence_penalty=2.0, extra_body=NO_EOS)
    assert rep != base
    assert freq.choices[0].text != base


def test_native_generate_streaming(server) -> None:
    body = {"text": "Hello", "sampling_params": {"max_new_tokens": 5, "temperature": 0.0, "ignore_eos": True}}
    status, whole = server.post("/generate", body)
    assert status == 200
    status, raw = request(
        server.url + "/generate", json.dumps({**body, "stream": True}).encode(), {"Content-Type": "application/json"}
    )
    events = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: {")]
    assert raw.rstrip().endswith("data: [DONE]")
    assert "".join(e["text"] for e in events) == whole["text"]
    assert sum((e["output_ids"] for e in events), []) == whole["output_ids"]
    assert events[-1]["meta_info"]["finish_reason"] == "length"


def test_metrics_and_prefix_cache(server, client, model) -> None:
    prompt = "a long shared prefix " * 4
    for _ in range(2):
        client.completions.create(model=model, prompt=prompt, max_tokens=2, **GREEDY)
    m = server.wait_idle()
    assert m["minisgl_prefix_cache_hit_tokens_total"] > 0
    assert m["minisgl_prompt_tokens_total"] > 0 and m["minisgl_generation_tokens_total"] > 0
    assert m["minisgl_time_to_first_token_seconds_count"] > 0 and m["minisgl_inter_token_latency_seconds_count"] > 0
    assert m["minisgl_kv_pages_total"] == m["minisgl_kv_pages_free"] + m["minisgl_kv_pages_cached"]
