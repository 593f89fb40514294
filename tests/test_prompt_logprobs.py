"""Prompt-token logprobs (vLLM's ``prompt_logprobs``, ``echo`` with ``logprobs``, SGLang's
``logprob_start_len``) computed by the engine during (chunked) prefill, checked against transformers."""

from __future__ import annotations

import json
import math

import httpx
import pytest
import torch
from server_harness import ServerProcess, http_client, serving

from minisgl_core.checkpoint.tiny import byte_tokenizer

PROMPT = "The quick brown fox jumps over"  # 30 byte tokens: four chunks of 8


@pytest.fixture(scope="module")
def server(tiny_qwen3, tmp_path_factory):
    yield from serving(tmp_path_factory, tiny_qwen3.path, "--max-model-len", "128", "--max-prefill-tokens", "8")


@pytest.fixture(scope="module")
def http(server):
    yield from http_client(server)


@pytest.fixture(scope="module")
def reference(tiny_qwen3) -> tuple[list[int], torch.Tensor]:
    ids = byte_tokenizer().encode(PROMPT)
    with torch.no_grad():
        logits = tiny_qwen3.hf_model(torch.tensor([ids])).logits[0].float()
    return ids, logits.log_softmax(dim=-1)


def test_prompt_logprobs_match_transformers(http, reference) -> None:
    ids, lp = reference
    body = {"prompt": PROMPT, "max_tokens": 2, "temperature": 0.0, "prompt_logprobs": 3}
    for _ in range(2):  # the second time the prefix cache holds the prompt: it must still be scored
        choice = http.post("/v1/completions", json=body).json()["choices"][0]
        got = choice["prompt_logprobs"]
        assert len(got) == len(ids) and got[0] is None
        for p in range(1, len(ids)):
            want = lp[p - 1]
            entry = got[p]
            assert entry[str(ids[p])]["logprob"] == pytest.approx(float(want[ids[p]]), abs=1e-4)
            assert entry[str(ids[p])]["rank"] == int((want > want[ids[p]]).sum()) + 1
            top = want.topk(3)
            for r, (v, t) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
                assert entry[str(t)]["rank"] == r and entry[str(t)]["logprob"] == pytest.approx(v, abs=1e-4)


def test_echo_with_logprobs(http, reference) -> None:
    ids, lp = reference
    body = {"prompt": PROMPT, "max_tokens": 3, "temperature": 0.0, "echo": True, "logprobs": 1, "ignore_eos": True}
    choice = http.post("/v1/completions", json=body).json()["choices"][0]
    got = choice["logprobs"]
    assert choice["text"].startswith(PROMPT) and "prompt_logprobs" not in choice
    assert len(got["tokens"]) == len(ids) + 3 and got["token_logprobs"][0] is None and got["top_logprobs"][0] is None
    want = [float(lp[p - 1, ids[p]]) for p in range(1, len(ids))]
    assert got["token_logprobs"][1 : len(ids)] == pytest.approx(want, abs=1e-4)
    assert got["text_offset"][: len(ids)] == list(range(len(ids)))  # one character per byte token here
    assert all(len(t) <= 2 for t in got["top_logprobs"][1:])
    events = http.post("/v1/completions", json={**body, "stream": True}).text.split("\n\n")
    chunks = [json.loads(e[6:])["choices"][0] for e in events if e.startswith("data: {")]
    assert "".join(c["text"] for c in chunks) == choice["text"]
    streamed = [v for c in chunks if c["logprobs"] for v in c["logprobs"]["token_logprobs"]]
    assert streamed[0] is None and streamed[1:] == pytest.approx(got["token_logprobs"][1:], abs=1e-6)


def test_generate_logprob_start_len(http, reference) -> None:
    ids, lp = reference
    sp = {"max_new_tokens": 2, "temperature": 0.0}
    body = {"input_ids": ids, "sampling_params": sp, "return_logprob": True, "logprob_start_len": 5,
            "top_logprobs_num": 2}  # fmt: skip
    info = http.post("/generate", json=body).json()["meta_info"]
    values = info["input_token_logprobs"]
    assert [v[1] for v in values] == ids[5:]
    assert [v[0] for v in values] == pytest.approx([float(lp[p - 1, ids[p]]) for p in range(5, len(ids))], abs=1e-4)
    assert all(len(t) == 2 for t in info["input_top_logprobs"])
    whole = http.post("/generate", json={**body, "logprob_start_len": 0}).json()["meta_info"]
    assert whole["input_token_logprobs"][0][0] is None and not math.isnan(whole["input_token_logprobs"][1][0])
    bad = http.post("/generate", json={"input_ids": ids, "sampling_params": sp, "logprob_start_len": 0})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "logprob_start_len"


@pytest.mark.gpu
def test_prompt_logprobs_on_gpu(tmp_path) -> None:
    """The same through the CUDA engine (FlashInfer prefill, chunked, CUDA graphs and overlap on) with a tiny
    model of the real models' head size (FlashInfer's kernels are built for 64/128/256). FlashInfer runs in
    bfloat16 (no float32 kernels), so the tolerance is bfloat16's (this model in bfloat16 on the CPU is off by
    up to 0.14); a misplaced position is off by whole units."""
    from minisgl_core.testing.tiny_models import save_tiny_model

    hf = save_tiny_model(tmp_path / "model", "qwen3", head_dim=128, num_attention_heads=4, num_key_value_heads=2)
    ids = byte_tokenizer().encode(PROMPT)
    with torch.no_grad():
        lp = hf(torch.tensor([ids])).logits[0].float().log_softmax(dim=-1)
    srv = ServerProcess(tmp_path / "model", tmp_path / "server.log", "--device", "cuda", "--dtype", "bfloat16",
                        "--attention", "auto", "--max-model-len", "128", "--max-prefill-tokens", "8")  # fmt: skip
    try:
        body = {"prompt": PROMPT, "max_tokens": 4, "temperature": 0.0, "prompt_logprobs": 1, "echo": True,
                "logprobs": 0}  # fmt: skip
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            choice = c.post("/v1/completions", json=body).json()["choices"][0]
        got = choice["logprobs"]["token_logprobs"][1 : len(ids)]
        want = [float(lp[p - 1, ids[p]]) for p in range(1, len(ids))]
        assert got == pytest.approx(want, abs=0.25)
    finally:
        srv.stop()


def test_chat_prompt_logprobs(http, tiny_qwen3) -> None:
    messages = [{"role": "user", "content": "fox"}]
    ids = http.post("/tokenize", json={"messages": messages}).json()["tokens"]
    with torch.no_grad():
        lp = tiny_qwen3.hf_model(torch.tensor([ids])).logits[0].float().log_softmax(dim=-1)
    body = {"messages": messages, "max_tokens": 1, "prompt_logprobs": 0}
    got = http.post("/v1/chat/completions", json=body).json()["prompt_logprobs"]
    assert len(got) == len(ids) and got[0] is None
    assert [got[p][str(ids[p])]["logprob"] for p in range(1, len(ids))] == pytest.approx(
        [float(lp[p - 1, ids[p]]) for p in range(1, len(ids))], abs=1e-4
    )
    streamed = http.post("/v1/chat/completions", json={**body, "stream": True})
    assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "prompt_logprobs"


@pytest.mark.parametrize("pressure", [False, True])
def test_engine_scores_prompts_like_transformers(tiny_qwen3, pressure: bool) -> None:
    """The scheduler and engine alone (no server): chunked prefill, mixed with other requests, and - under
    KV pressure - requests retracted and prefilled again, still score every prompt token exactly once."""
    import random

    from minisgl_core import LLM, SamplingParams

    rng = random.Random(3)
    prompts = [[rng.randrange(0, 256) for _ in range(n)] for n in (40, 5, 64, 2, 33, 90, 17, 50)]
    kw = {"num_kv_tokens": 160, "cache": "naive"} if pressure else {}
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=16, **kw)
    params = [SamplingParams(temperature=0.0, max_tokens=24, ignore_eos=True, prompt_logprobs=2 if i % 2 else None)
              for i in range(len(prompts))]  # fmt: skip
    reqs = [llm._make_request(p, sp) for p, sp in zip(prompts, params)]
    llm._run(reqs, False)
    if pressure:
        assert llm.scheduler.num_retractions > 0
    for req, prompt in zip(reqs, prompts):
        if req.params.prompt_logprobs is None:
            assert req.prompt_logprobs == []
            continue
        with torch.no_grad():
            lp = tiny_qwen3.hf_model(torch.tensor([prompt])).logits[0].float().log_softmax(dim=-1)
        assert [s.token_id for s in req.prompt_logprobs] == prompt[1:]
        want = [float(lp[p - 1, prompt[p]]) for p in range(1, len(prompt))]
        assert [s.logprob for s in req.prompt_logprobs] == pytest.approx(want, abs=1e-4)
        assert all(len(s.top) == 2 and s.rank >= 1 for s in req.prompt_logprobs)


def test_llm_generate_returns_prompt_logprobs(tiny_qwen3) -> None:
    """The offline API hands them out as vLLM does: ``None`` for the first prompt token, then one entry per
    token (with its rank and the requested top alternatives); ``None`` when not asked for."""
    from minisgl_core import LLM, SamplingParams

    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_prefill_tokens=8)
    ids = byte_tokenizer().encode(PROMPT)
    asked, plain = llm.generate(
        [ids, ids], [SamplingParams(max_tokens=1, prompt_logprobs=2), SamplingParams(max_tokens=1)]
    )
    with torch.no_grad():
        lp = tiny_qwen3.hf_model(torch.tensor([ids])).logits[0].float().log_softmax(dim=-1)
    got = asked.prompt_logprobs
    assert plain.prompt_logprobs is None and len(got) == len(ids) and got[0] is None
    assert [e.token_id for e in got[1:]] == ids[1:]
    assert [e.logprob for e in got[1:]] == pytest.approx(
        [float(lp[p - 1, ids[p]]) for p in range(1, len(ids))], abs=1e-4
    )
    assert all(len(e.top) == 2 and e.rank >= 1 for e in got[1:])
