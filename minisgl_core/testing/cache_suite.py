"""Conformance suite for KV-cache policies: the contract of :class:`~minisgl_core.contracts.CachePolicy`, checked
the way the core relies on it.

A cache plugin's whole test::

    from minisgl_core.testing import CachePolicySuite

    class TestMyPolicy(CachePolicySuite):
        policy = "my-policy"

Checked, for every page size: no slot is leaked, freed twice or returned while a running request reads it,
over long random workloads with memory pressure (:class:`CacheHarness`); prefixes shared with finished
requests are hit, with the right slots; eviction frees what it is asked for, in whole pages, and never a
locked prefix; ``peek_prefix_len`` equals the length ``match_prefix`` finds and leaves the eviction order
alone; and generation through the engine, under memory pressure, gives the same tokens as the
reference policy (``radix``) with the page accounting intact. Set ``shares_prefixes = False`` for a policy
that never reuses KV (like ``naive``): the hit tests then check that nothing is kept instead.
"""

from __future__ import annotations

import random
from types import MappingProxyType
from typing import ClassVar

import torch

from minisgl_core.contracts.cache import CacheContext, CachePolicy
from minisgl_core.plugins import CACHE, lookup
from minisgl_core.testing.cache_harness import CacheHarness
from minisgl_core.testing.suite_base import ConformanceSuite


class CachePolicySuite(ConformanceSuite):
    """Checks the cache policy registered as :attr:`policy` (see the module docstring)."""

    policy: ClassVar[str] = ""
    """The registered name of the policy under test."""
    reference: ClassVar[str] = "radix"
    shares_prefixes: ClassVar[bool] = True
    """Whether the policy reuses KV of finished requests (``False``: it must keep nothing)."""
    page_sizes: ClassVar[tuple[int, ...]] = (1, 4, 16)
    workload_seeds: ClassVar[tuple[int, ...]] = (0, 1, 2)
    generation_page_sizes: ClassVar[tuple[int, ...]] = (1, 16)
    params: ClassVar[dict[str, str]] = {
        "page_size": "page_sizes",
        "seed": "workload_seeds",
        "generation_page_size": "generation_page_sizes",
    }

    def create(self, page_size: int, num_pages: int = 64) -> CachePolicy:
        ctx = CacheContext(page_size, num_pages, torch.device(self.device), MappingProxyType(dict(self.options)))
        policy = lookup(CACHE, self.policy).create(ctx)
        assert isinstance(policy, CachePolicy), f"factory of {self.policy!r} returned {type(policy).__name__}"
        return policy

    def harness(self, page_size: int, num_pages: int = 64) -> CacheHarness:
        return CacheHarness(self.create(page_size, num_pages), page_size, num_pages)

    # -- contract ---------------------------------------------------------------------------------------

    def test_starts_empty(self, page_size: int) -> None:
        h = self.harness(page_size)
        assert h.policy.cached_tokens == 0 and h.policy.evictable_tokens == 0
        assert h.match(list(range(3 * page_size)))[0] == 0
        assert h.evict(5 * page_size).numel() == 0
        h.check()

    def test_random_workload_keeps_every_slot_accounted(self, page_size: int, seed: int) -> None:
        rng = random.Random(seed)
        h = self.harness(page_size, num_pages=24)
        stems = [[rng.randrange(4) for _ in range(6 * page_size)] for _ in range(3)]
        for _ in range(300):
            op = rng.random()
            if op < 0.45 or not h.running:
                stem = rng.choice(stems)[: rng.randrange(0, 6 * page_size + 1)]
                tokens = stem + [rng.randrange(4) for _ in range(rng.randrange(1, 3 * page_size + 2))]
                h.admit(tokens)
            elif op < 0.8:
                h.finish(h.running[rng.randrange(len(h.running))])
            elif op < 0.9:
                h.abort(h.running[rng.randrange(len(h.running))])
            else:
                h.evict(rng.randrange(0, 8 * page_size))
            h.check()
        while h.running:
            h.finish(h.running[0])
        h.evict(10**9)
        h.check()
        assert h.policy.cached_tokens == 0, "evicting everything while nothing runs must empty the cache"

    def test_hits_on_shared_prefixes(self, page_size: int) -> None:
        h = self.harness(page_size)
        system = [3, 1, 4, 1, 5, 9, 2, 6] * page_size  # 8 pages
        first = h.admit(system + [7] * (page_size + 1))
        assert first is not None
        h.finish(first)
        h.check()
        length, slots, _ = h.match(system + [8, 8])
        if not self.shares_prefixes:
            assert length == 0 and h.policy.cached_tokens == 0, "a policy that shares nothing must keep nothing"
            return
        assert length == len(system), f"a finished request's prefix must be hit: matched {length} of {len(system)}"
        assert slots.tolist() == first.slots[: len(system)]
        second = h.admit(system + [8] * (2 * page_size))
        assert second is not None and second.matched == len(system)
        h.finish(second)
        again = h.admit(first.tokens)  # all of the first request's whole pages are cached
        assert again is not None and again.matched == len(first.tokens) // page_size * page_size
        h.finish(again)
        h.check()

    def test_eviction_under_pressure(self, page_size: int) -> None:
        h = self.harness(page_size, num_pages=16)
        rng = random.Random(7)
        for _ in range(40):  # far more distinct prompts than fit: admission has to evict
            req = h.admit([rng.randrange(1000) for _ in range(3 * page_size)])
            assert req is not None, "with nothing running, eviction must make room for a request that fits"
            h.finish(req)
            h.check()
        if not self.shares_prefixes:
            return
        assert h.policy.cached_tokens > 0
        while h.policy.evictable_tokens:
            freed = h.evict(page_size)
            assert freed.numel() >= page_size
            h.check()
        assert h.policy.cached_tokens == 0

    def test_locked_prefix_survives_eviction(self, page_size: int) -> None:
        h = self.harness(page_size)
        system = [2, 7, 1, 8] * page_size
        first = h.admit(system + [0] * page_size)
        assert first is not None
        h.finish(first)
        reader = h.admit(system + [5] * page_size)  # locks the shared prefix while it runs
        assert reader is not None
        h.evict(10**9)
        h.check()
        if self.shares_prefixes:
            assert h.match(system)[0] == len(system), "a locked prefix was evicted"
        h.finish(reader)
        h.evict(10**9)
        h.check()
        assert h.policy.cached_tokens == 0

    def test_peek_is_a_side_effect_free_match(self, page_size: int) -> None:
        rng = random.Random(3)

        def pages(n: int) -> list[int]:
            return [rng.randrange(50) for _ in range(n * page_size)]

        stem = pages(2)
        entries = [stem + pages(2), stem + pages(2), pages(3) + [1]]  # finished oldest first
        old = entries[0]
        queries = [old, old + [7], old[: 3 * page_size] + pages(1), old[:page_size], stem[:-1], pages(2), []]

        def filled() -> CacheHarness:
            h = self.harness(page_size)
            for tokens in entries:
                req = h.admit(tokens)
                assert req is not None
                h.finish(req)
            return h

        peeked, matched, untouched = filled(), filled(), filled()
        for query in queries:
            length = peeked.policy.peek_prefix_len(query)
            assert length == matched.match(query)[0], f"peek_prefix_len gave {length}, match_prefix another length"
        peeked.check()
        assert _eviction_order(peeked) == _eviction_order(untouched), "peek_prefix_len changed what is evicted next"

    # -- through the engine -------------------------------------------------------------------------------

    def test_generation_matches_reference(self, generation_page_size: int) -> None:
        page_size = generation_page_size
        from minisgl_core.contracts.sampling import SamplingParams
        from minisgl_core.llm import LLM
        from minisgl_core.testing.tiny_models import tiny_model_dir

        rng = random.Random(0)
        systems = [[rng.randrange(256) for _ in range(48)] for _ in range(3)]
        prompts = [s + [rng.randrange(256) for _ in range(rng.randint(1, 12))] for _ in range(3) for s in systems]
        params = SamplingParams(temperature=0.0, max_tokens=6, ignore_eos=True)
        results = {}
        for name in (self.reference, self.policy):
            llm = LLM(
                str(tiny_model_dir("qwen3")), device=self.device, attention="torch", cache=name,
                cache_options=self.options if name == self.policy else {}, page_size=page_size,
                num_kv_tokens=256, max_prefill_tokens=64,
            )  # fmt: skip
            outs = llm.generate(prompts, params, use_tqdm=False) + llm.generate(prompts[:3], params, use_tqdm=False)
            llm.scheduler.check_memory()
            results[name] = ([o.token_ids for o in outs], sum(o.num_cached_tokens for o in outs))
        assert results[self.policy][0] == results[self.reference][0], "tokens differ from the reference policy"
        if self.shares_prefixes:
            assert results[self.policy][1] > 0, "no prompt token was served from the cache"


def _eviction_order(h: CacheHarness) -> list[list[int]]:
    """Evict ``h``'s cache a page at a time; the slots freed by each call."""
    order = []
    while h.policy.evictable_tokens:
        order.append(h.evict(h.ps).tolist())
    return order
