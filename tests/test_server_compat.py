"""OpenAI/vLLM/SGLang behaviours against a real server process: the stock ``openai`` client (streaming and
not) and raw ``httpx`` for the SSE framing. Completions' ``echo``, ``best_of``, ``logprobs=0``,
``continuous_usage_stats``; chat streams (role first, no empty delta, true logprob bytes); cached tokens;
the native ``/generate`` batch form with logprobs."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
from server_harness import http_client, serving

from minisgl_core.checkpoint.tiny import byte_tokenizer

GREEDY = {"temperature": 0.0}
NO_EOS = {"ignore_eos": True}
MESSAGES = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    yield from serving(tmp_path_factory, tiny_qwen3.path, "--max-model-len", "256")


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", timeout=60, max_retries=0)


@pytest.fixture(scope="module")
def http(server):
    yield from http_client(server)


def sse_events(raw: str) -> list[dict]:
    """The JSON events of a stream; checks the framing: ``data: ...`` events separated by blank lines,
    ending with ``data: [DONE]``."""
    assert raw.endswith("data: [DONE]\n\n"), raw[-200:]
    blocks = raw.split("\n\n")[:-2]
    assert all(b.startswith("data: {") and "\n" not in b for b in blocks), blocks
    return [json.loads(b[6:]) for b in blocks]


def test_echo(client, http) -> None:
    kw = dict(model=None, max_tokens=5, extra_body=NO_EOS, **GREEDY)
    plain = client.completions.create(prompt="Hello", **kw).choices[0].text
    echoed = client.completions.create(prompt="Hello", echo=True, **kw).choices[0].text
    assert echoed == "Hello" + plain
    ids = byte_tokenizer().encode("Hi!")
    assert client.completions.create(prompt=ids, echo=True, **kw).choices[0].text.startswith("Hi!")
    streamed = list(client.completions.create(prompt="Hello", echo=True, stream=True, **kw))
    assert streamed[0].choices[0].text == "Hello"  # the acceptance chunk carries the prompt
    assert "".join(c.choices[0].text for c in streamed) == echoed


def test_logprobs_zero_names_the_sampled_token(client) -> None:
    out = client.completions.create(model=None, prompt="Hi", max_tokens=4, logprobs=0, **GREEDY)
    lp = out.choices[0].logprobs
    assert len(lp.token_logprobs) == 4 and all(v <= 0.0 for v in lp.token_logprobs)
    assert [list(t) for t in lp.top_logprobs] == [[tok] for tok in lp.tokens]
    assert [t[tok] for t, tok in zip(lp.top_logprobs, lp.tokens)] == lp.token_logprobs


def test_best_of_returns_the_most_likely_samples(client) -> None:
    kw = dict(model=None, prompt="abc", max_tokens=6, temperature=1.0, seed=11, extra_body=NO_EOS)
    every = client.completions.create(n=4, logprobs=0, **kw).choices
    scores = [sum(c.logprobs.token_logprobs) for c in every]
    best = client.completions.create(n=2, best_of=4, **kw)
    ranked = sorted(range(4), key=lambda i: scores[i], reverse=True)[:2]
    assert [c.text for c in best.choices] == [every[i].text for i in ranked]
    assert [c.index for c in best.choices] == [0, 1] and best.choices[0].logprobs is None
    assert best.usage.completion_tokens == 24  # every sampled token was generated
    same = client.completions.create(n=2, best_of=2, **kw)
    assert [c.text for c in same.choices] == [every[0].text, every[1].text]
    for bad in ({"n": 3, "best_of": 2}, {"best_of": 3, "stream": True}):
        with pytest.raises(openai.BadRequestError) as err:
            client.completions.create(**{**kw, **bad})
        assert err.value.body["param"] == "best_of"


def test_continuous_usage_stats(http) -> None:
    body = {"prompt": "Hi", "max_tokens": 5, "stream": True, "ignore_eos": True, **GREEDY,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}  # fmt: skip
    events = sse_events(http.post("/v1/completions", json=body).text)
    counts = [e["usage"]["completion_tokens"] for e in events if e["choices"]]
    assert counts == sorted(counts) and counts[-1] == 5 and counts[0] == 0
    assert all(e["usage"]["prompt_tokens"] == 2 for e in events)
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] == 7


def test_chat_stream_framing_role_first_no_empty_delta(http, client) -> None:
    body = {"messages": MESSAGES, "max_tokens": 8, "stream": True, "n": 2, "logprobs": True, **GREEDY}
    r = http.post("/v1/chat/completions", json=body)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    for i in (0, 1):
        chunks = [e["choices"][0] for e in events if e["choices"][0]["index"] == i]
        assert chunks[0]["delta"]["role"] == "assistant"
        assert all("role" not in c["delta"] for c in chunks[1:])
        assert all(c["delta"] for c in chunks)
        assert chunks[-1]["finish_reason"] == "length"
        assert sum(len(c["logprobs"]["content"]) for c in chunks) == 8
    stock = list(client.chat.completions.create(model=None, messages=MESSAGES, max_tokens=4, stream=True, **GREEDY))
    assert stock[0].choices[0].delta.role == "assistant"


def test_logprob_bytes_are_true_bytes(http) -> None:
    tok = byte_tokenizer()
    allowed = {t: b for t, b in zip(tok.encode("中"), "中".encode())}  # three partial-UTF-8 tokens
    bias = {str(t): -100 for t in range(len(tok)) if t not in allowed}
    body = {"messages": MESSAGES, "max_tokens": 9, "logit_bias": bias, "logprobs": True, "top_logprobs": 2,
            "ignore_eos": True, "temperature": 1.0, "seed": 5}  # fmt: skip
    whole = http.post("/v1/chat/completions", json=body).json()["choices"][0]
    entries = whole["logprobs"]["content"]
    assert len(entries) == 9
    for e in entries:
        assert len(e["bytes"]) == 1 and e["bytes"][0] in allowed.values() and e["bytes"] != [0xEF, 0xBF, 0xBD]
        assert all(len(t["bytes"]) == 1 for t in e["top_logprobs"])
    raw = bytes(b for e in entries for b in e["bytes"])
    assert whole["message"]["content"] == raw.decode("utf-8", errors="replace")
    events = sse_events(http.post("/v1/chat/completions", json={**body, "stream": True}).text)
    assert all(e["choices"][0]["delta"] for e in events)
    streamed = [e2 for e in events for e2 in (e["choices"][0]["logprobs"] or {}).get("content", [])]
    assert [e["bytes"] for e in streamed] == [e["bytes"] for e in entries]
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events) == whole["message"]["content"]


def test_cached_tokens_only_when_the_prefix_cache_served(client) -> None:
    prompt = "Zebras quietly jump over the cached prefix " * 3  # no earlier prompt starts with "Z"
    first = client.completions.create(model=None, prompt=prompt + "1", max_tokens=2, **GREEDY)
    assert first.usage.prompt_tokens_details is None
    again = client.completions.create(model=None, prompt=prompt + "2", max_tokens=2, **GREEDY)
    assert again.usage.prompt_tokens_details.cached_tokens > 0


def test_generate_batch_n_and_logprobs(http) -> None:
    sp = {"max_new_tokens": 4, "temperature": 0.0, "ignore_eos": True}
    one = [http.post("/generate", json={"text": t, "sampling_params": sp}).json() for t in ("ab", "cd")]
    batch = http.post("/generate", json={"text": ["ab", "cd"], "sampling_params": sp}).json()
    assert [b["output_ids"] for b in batch] == [o["output_ids"] for o in one]
    ids = byte_tokenizer().encode("ab")
    by_ids = http.post("/generate", json={"input_ids": [ids], "sampling_params": sp}).json()
    assert isinstance(by_ids, list) and by_ids[0]["output_ids"] == one[0]["output_ids"]
    n = http.post("/generate", json={"text": "ab", "sampling_params": {**sp, "n": 2}}).json()
    assert [c["output_ids"] for c in n] == [one[0]["output_ids"]] * 2
    lp = http.post(
        "/generate", json={"text": "ab", "sampling_params": sp, "return_logprob": True, "top_logprobs_num": 3}
    ).json()["meta_info"]
    assert [t[1] for t in lp["output_token_logprobs"]] == one[0]["output_ids"]
    assert all(len(top) == 3 and top[0][0] >= top[2][0] for top in lp["output_top_logprobs"])
    per = http.post("/generate", json={"text": ["ab", "cd"], "sampling_params": [sp, {**sp, "max_new_tokens": 2}]})
    assert [len(b["output_ids"]) for b in per.json()] == [4, 2]
    bad = http.post("/generate", json={"text": ["ab", "cd"], "sampling_params": [sp]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "sampling_params"


def test_metrics_carry_model_name_and_request_series(server, http) -> None:
    http.post("/v1/completions", json={"prompt": "metrics", "max_tokens": 3, "ignore_eos": True})
    server.wait_idle()
    text = http.get("/metrics").text
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert series and all('model_name="' in line for line in series), [s for s in series if "model_name" not in s]
    m = server.metrics()
    for name in ("queue_time", "prefill_time", "decode_time", "prompt_tokens", "generation_tokens"):
        assert m[f"minisgl_request_{name}{'_seconds' if 'time' in name else ''}_count"] > 0, name
    assert m["minisgl_request_prefill_time_seconds_sum"] > 0 and m["minisgl_request_decode_time_seconds_sum"] > 0
    assert m['minisgl_requests_total{finish_reason="length"}'] > 0
    documented = (Path(__file__).resolve().parents[1] / "docs" / "server.md").read_text()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    missing = [f for f in families if not f.endswith("_created") and f.removesuffix("_total") not in documented]
    assert not missing, f"docs/server.md does not list {missing}"


def test_extensions_are_documented() -> None:
    """The allow-list: every field the request models declare beyond OpenAI's is in docs/server.md."""
    import typing

    from openai.types import completion_create_params as cp
    from openai.types.chat import completion_create_params as ccp

    from minisgl_core.server.protocol_chat import ChatCompletionRequest
    from minisgl_core.server.protocol_completion import CompletionRequest

    documented = (Path(__file__).resolve().parents[1] / "docs" / "server.md").read_text()
    for model, params in ((CompletionRequest, cp.CompletionCreateParamsBase),
                          (ChatCompletionRequest, ccp.CompletionCreateParamsBase)):  # fmt: skip
        extra = set(model.model_fields) - set(typing.get_type_hints(params)) - {"stream"}
        assert not [f for f in extra if f"`{f}`" not in documented], extra


def test_logit_bias_and_min_tokens_fields(http) -> None:
    base = {"prompt": "Hi", "max_tokens": 6, "temperature": 0.0}
    for bias, why in (({"65": 150}, "range"), ({"100000": 5}, "vocabulary"), ({"x": 1}, "key")):
        r = http.post("/v1/completions", json={**base, "logit_bias": bias})
        assert r.status_code == 400 and r.json()["error"]["param"].startswith("logit_bias"), (why, r.text)
    first = http.post("/v1/completions", json=base).json()["choices"][0]
    forced = byte_tokenizer().encode("Q")[0]
    out = http.post("/v1/completions", json={**base, "logit_bias": {str(forced): 100}}).json()["choices"][0]
    assert out["text"] == "Q" * 6 != first["text"]
    stop = byte_tokenizer().encode(first["text"][0])[0]
    early = http.post("/v1/completions", json={**base, "stop_token_ids": [stop]}).json()
    assert early["usage"]["completion_tokens"] == 1
    late = http.post("/v1/completions", json={**base, "stop_token_ids": [stop], "min_tokens": 3}).json()
    assert late["usage"]["completion_tokens"] >= 3
    stop_text = {**base, "stop": [first["text"][0]]}  # a stop string in the first token's text
    assert http.post("/v1/completions", json=stop_text).json()["choices"][0]["text"] == ""
    kept = http.post("/v1/completions", json={**stop_text, "min_tokens": 3}).json()
    assert kept["choices"][0]["text"].startswith(first["text"][0]) and kept["usage"]["completion_tokens"] >= 3
    r = http.post("/v1/completions", json={**base, "min_tokens": 7})
    assert r.status_code == 400 and r.json()["error"]["param"] == "min_tokens"
