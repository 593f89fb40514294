"""Tensor parallelism on CPU (gloo, 2 processes): TP=2 greedy output equals TP=1 (= transformers)."""

from __future__ import annotations

import random

import pytest
import torch

from minisgl_core import LLM, SamplingParams

NEW_TOKENS = 24
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)


def prompts(shared: int = 0, n: int = 8, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    prefix = [rng.randrange(256) for _ in range(shared)]
    return [prefix + [rng.randrange(256) for _ in range(rng.randint(1, 70))] for _ in range(n)]


@pytest.mark.parametrize("variant", [{}, {"page_size": 16, "max_prefill_tokens": 16}])
def test_tp2_matches_transformers(tiny_model, variant: dict) -> None:
    with LLM(str(tiny_model.path), device="cpu", attention="torch", tp=2, **variant) as llm:
        assert len(llm.runtime.followers) == 1
        batches = [prompts(), prompts(shared=40, seed=1)]  # the second batch hits the prefix cache
        for batch in batches:
            outs = llm.generate(batch, GREEDY, use_tqdm=False)
            assert [o.token_ids for o in outs] == [tiny_model.greedy(p, NEW_TOKENS) for p in batch]
        follower = llm.runtime.followers[0]
    follower.join(timeout=10)
    assert not follower.is_alive()


def test_dummy_weights_are_the_same_model_at_every_tp_size(tiny_model) -> None:
    """``--load-format dummy`` builds checkpoint-shaped tensors and shards them like real ones, so TP=2 over
    dummy weights must generate exactly what TP=1 does (what the GPU benchmarks compare)."""
    batch = prompts(n=4)
    with LLM(str(tiny_model.path), device="cpu", attention="torch", load_format="dummy") as llm:
        single = [o.token_ids for o in llm.generate(batch, GREEDY, use_tqdm=False)]
        embed = llm.runtime.engine.model.model.embed_tokens.weight.detach().clone()
    with LLM(str(tiny_model.path), device="cpu", attention="torch", load_format="dummy", tp=2) as llm:
        assert [o.token_ids for o in llm.generate(batch, GREEDY, use_tqdm=False)] == single
        shard = llm.runtime.engine.model.model.embed_tokens.weight
        assert torch.equal(shard, embed[: shard.shape[0]])  # rank 0 holds the first rows of the same table
    assert single != [tiny_model.greedy(p, NEW_TOKENS) for p in batch]  # not the checkpoint's weights


def test_tp_shards_weights_and_kv_heads(tiny_qwen3) -> None:
    with LLM(str(tiny_qwen3.path), device="cpu", attention="torch", tp=2) as llm:
        engine = llm.runtime.engine
        attn = engine.model.model.layers[0].self_attn
        assert attn.qkv_proj.num_heads == 2 and attn.qkv_proj.num_kv_heads == 1
        assert engine.kv_pool.num_kv_heads == 1


def test_tp2_through_the_server(tiny_qwen3, tmp_path) -> None:
    import time

    from server_harness import ServerProcess, group_members

    server = ServerProcess(tiny_qwen3.path, tmp_path / "server.log", "--tp", "2")
    try:
        # API server + tokenizer + detokenizer + engine (TP rank 0) + TP rank 1 (+ multiprocessing helpers)
        assert len(group_members(server.proc.pid)) >= 5
        for prompt in prompts(n=3):
            body = {"input_ids": prompt, "sampling_params": {"max_new_tokens": NEW_TOKENS, "temperature": 0.0,
                                                             "ignore_eos": True}}  # fmt: skip
            status, reply = server.post("/generate", body)
            assert status == 200, reply
            assert reply["output_ids"] == tiny_qwen3.greedy(prompt, NEW_TOKENS)
    finally:
        pid = server.proc.pid
        server.proc.terminate()
        code = server.proc.wait(30)
        deadline = time.monotonic() + 10
        while group_members(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = group_members(pid)
        server.stop()
    assert code == 0 and not left, f"exit {code}, processes left: {left}"


def test_tp_greedy_benchmark_script(tiny_qwen3, capsys: pytest.CaptureFixture[str]) -> None:
    """``benchmarks/tp_greedy.py`` (the GPU TP=1 vs TP=2 check) runs end to end on a tiny config."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import tp_greedy

    args = ["--model", str(tiny_qwen3.path), "--device", "cpu", "--num-prompts", "2", "--max-tokens", "8"]
    code = tp_greedy.main(args)
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and report["identical"] and report["equal_prefix"] == [8, 8]
