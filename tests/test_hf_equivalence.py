"""Greedy generations must be token-identical to transformers (float32, tiny random Qwen3 and Llama)."""

from __future__ import annotations

import random

import pytest

from minisgl_core import LLM, SamplingParams

NEW_TOKENS = 32
GREEDY = SamplingParams(temperature=0.0, max_tokens=NEW_TOKENS, ignore_eos=True)


def make_prompts(n: int = 8, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    lengths = [1, 5, 17, 40, 64, 3, 90, 33][:n] + [rng.randint(2, 80) for _ in range(max(0, n - 8))]
    return [[rng.randrange(0, 256) for _ in range(length)] for length in lengths]


def check_against_hf(llm: LLM, tiny, prompts: list[list[int]]) -> None:
    outs = llm.generate(prompts, GREEDY, use_tqdm=False)
    for prompt, out in zip(prompts, outs):
        assert out.token_ids == tiny.greedy(prompt, NEW_TOKENS), f"prompt of {len(prompt)} tokens diverged"
        assert out.finish_reason == "length"
    llm.scheduler.check_memory()


VARIANTS = {
    "default": {},
    "chunked-16": {"max_prefill_tokens": 16},
    "page-16": {"page_size": 16},
    "naive": {"cache": "naive"},
    "no-overlap": {"disable_overlap": True},
    "page-16-chunked-naive": {"page_size": 16, "max_prefill_tokens": 16, "cache": "naive"},
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_greedy_matches_transformers(tiny_model, variant: str) -> None:
    llm = LLM(str(tiny_model.path), device="cpu", attention="torch", **VARIANTS[variant])
    check_against_hf(llm, tiny_model, make_prompts())


@pytest.mark.parametrize("page_size", [1, 16])
def test_shared_prefixes_reuse_radix_cache(tiny_model, page_size: int) -> None:
    llm = LLM(str(tiny_model.path), device="cpu", attention="torch", cache="radix", page_size=page_size)
    rng = random.Random(1)
    system = [rng.randrange(0, 256) for _ in range(70)]
    prompts = [system + [rng.randrange(0, 256) for _ in range(rng.randint(1, 20))] for _ in range(8)]
    check_against_hf(llm, tiny_model, prompts[:1])  # fills the cache with the shared prefix
    outs = llm.generate(prompts, GREEDY, use_tqdm=False)
    for prompt, out in zip(prompts, outs):
        assert out.token_ids == tiny_model.greedy(prompt, NEW_TOKENS)
    expected = len(system) // page_size * page_size
    assert all(out.num_cached_tokens >= expected for out in outs), [o.num_cached_tokens for o in outs]
    # a second pass over the same prompts hits even more (prompt + generated text was cached)
    again = llm.generate(prompts, GREEDY, use_tqdm=False)
    assert [o.token_ids for o in again] == [o.token_ids for o in outs]
    assert all(a.num_cached_tokens >= (len(p) - 1) // page_size * page_size for a, p in zip(again, prompts))
    llm.scheduler.check_memory()


@pytest.mark.parametrize("cache", ["radix", "naive"])
@pytest.mark.parametrize("page_size", [1, 16])
def test_small_kv_pool_waits_and_retracts(tiny_model, cache: str, page_size: int) -> None:
    # 8 prompts need ~370 prompt tokens + 256 generated; the pool holds far fewer, so requests must wait
    # for memory and running ones get retracted - yet nothing is lost and the tokens stay identical.
    llm = LLM(
        str(tiny_model.path), device="cpu", attention="torch", cache=cache, page_size=page_size, num_kv_tokens=192
    )
    check_against_hf(llm, tiny_model, make_prompts())
    scheduler = llm.scheduler
    assert not scheduler.running and not scheduler.waiting
    kv = scheduler.kv
    assert kv.allocator.num_free_pages + kv.cache.cached_tokens // page_size == kv.allocator.capacity_pages


def test_retraction_happens_under_pressure(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", cache="naive", num_kv_tokens=160)
    prompts = make_prompts()
    check_against_hf(llm, tiny_qwen3, prompts)
    assert llm.scheduler.num_retractions > 0


def test_max_running_requests_and_bfloat16_run(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", max_running_requests=2)
    check_against_hf(llm, tiny_qwen3, make_prompts())
    bf16 = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", dtype="bfloat16")
    outs = bf16.generate(make_prompts(4), GREEDY, use_tqdm=False)
    assert all(len(o.token_ids) == NEW_TOKENS for o in outs)


@pytest.mark.parametrize("page_size", [1, 16])
def test_concurrent_requests_share_a_prompt_as_soon_as_it_is_computed(tiny_qwen3, page_size: int) -> None:
    """Prompts finished in the same step are inserted into the radix cache while their requests still run:
    duplicate KV is freed and rows are re-pointed at the cache's copy, without changing any token."""
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", page_size=page_size, max_prefill_tokens=64)
    rng = random.Random(3)
    system = [rng.randrange(256) for _ in range(48)]
    prompts = [system + [rng.randrange(256) for _ in range(5)] for _ in range(6)]
    outs = llm.generate(prompts, GREEDY, use_tqdm=False)
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy(p, NEW_TOKENS) for p in prompts]
    # the 64-token chunk fits one prompt per step: later prompts hit what earlier, still running, ones shared
    assert sum(o.num_cached_tokens for o in outs) >= 4 * (48 // page_size * page_size)
    llm.scheduler.check_memory()
    kv = llm.scheduler.kv
    assert kv.allocator.num_free_pages + kv.cache.cached_tokens // page_size == kv.allocator.capacity_pages
