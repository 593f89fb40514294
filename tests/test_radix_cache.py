"""Tests for the ``radix`` cache policy: unit cases plus a stateful model of the engine's slot bookkeeping."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from minisgl_core.builtin.radix_cache import RadixCache
from minisgl_core.contracts.cache import CacheContext, PrefixMatch


def make(page_size: int = 1) -> RadixCache:
    return RadixCache(CacheContext(page_size=page_size, num_pages=1024, device=torch.device("cpu")))


def ar(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.int64)


def rng(lo: int, hi: int) -> torch.Tensor:
    return torch.arange(lo, hi, dtype=torch.int64)


# ------------------------------------------------------------------------------------------------ unit tests
def test_insert_then_match_full_and_partial() -> None:
    c = make()
    assert c.insert([1, 2, 3, 4], ar(10, 11, 12, 13)) == 0
    m = c.match_prefix([1, 2, 3, 4])
    assert m.length == 4 and m.slots.tolist() == [10, 11, 12, 13] and m.slots.dtype == torch.int64
    m = c.match_prefix([1, 2, 3, 4, 5, 6])
    assert m.length == 4 and m.slots.tolist() == [10, 11, 12, 13]
    m = c.match_prefix([1, 2, 9])
    assert m.length == 2 and m.slots.tolist() == [10, 11]
    m = c.match_prefix([7, 1, 2])
    assert m.length == 0 and m.handle is None and m.slots.numel() == 0
    assert c.match_prefix([]).length == 0
    assert c.cached_tokens == 4 and c.evictable_tokens == 4
    c.check_integrity()


def test_split_in_middle_of_node() -> None:
    c = make()
    c.insert([1, 2, 3, 4, 5], rng(0, 5))
    m = c.match_prefix([1, 2, 3, 9])
    assert m.length == 3 and m.slots.tolist() == [0, 1, 2]
    c.check_integrity()
    (top,) = c.root.children.values()
    assert top is m.handle and top.key == [1, 2, 3] and len(top.children) == 1
    (bottom,) = top.children.values()
    assert bottom.key == [4, 5] and bottom.value.tolist() == [3, 4]
    # A divergent insert at the split point adds a sibling of the lower half.
    assert c.insert([1, 2, 3, 9, 8], ar(0, 1, 2, 20, 21)) == 3
    assert len(top.children) == 2
    assert c.match_prefix([1, 2, 3, 9, 8]).slots.tolist() == [0, 1, 2, 20, 21]
    assert c.match_prefix([1, 2, 3, 4, 5]).slots.tolist() == [0, 1, 2, 3, 4]
    assert c.cached_tokens == 7
    c.check_integrity()


def test_insert_divergent_inside_node_splits() -> None:
    c = make()
    c.insert([1, 2, 3, 4], rng(0, 4))
    assert c.insert([1, 2, 7, 7], ar(0, 1, 8, 9)) == 2
    assert c.match_prefix([1, 2, 7, 7]).slots.tolist() == [0, 1, 8, 9]
    assert c.match_prefix([1, 2, 3, 4]).slots.tolist() == [0, 1, 2, 3]
    c.check_integrity()


def test_peek_neither_refreshes_recency_nor_splits() -> None:
    c, touched = make(), make()
    for cache in (c, touched):
        cache.insert([1, 2, 3, 4], rng(0, 4))  # older
        cache.insert([5, 6, 7, 8], rng(4, 8))
    assert c.peek_prefix_len([1, 2, 3, 4, 9]) == 4 and c.peek_prefix_len([1, 2, 9]) == 2
    assert c.peek_prefix_len([9]) == 0 and c.peek_prefix_len([]) == 0
    assert sorted(len(n.key) for n in c.root.children.values()) == [4, 4], "a peek split a node"
    assert c.evict(1).tolist() == [0, 1, 2, 3], "the peeked old prefix must still be evicted first"
    c.check_integrity()
    touched.match_prefix([1, 2, 3, 4])  # a match does refresh it: the other prefix goes first
    assert touched.evict(1).tolist() == [4, 5, 6, 7]


def test_page_size_alignment() -> None:
    c = make(page_size=4)
    assert c.insert(list(range(12)), rng(100, 112)) == 0
    m = c.match_prefix(list(range(10)))
    assert m.length == 8 and m.slots.tolist() == list(range(100, 108))
    # A mismatch inside the second page matches only the first page.
    m = c.match_prefix([0, 1, 2, 3, 4, 5, 99, 7, 8])
    assert m.length == 4
    assert c.match_prefix([0, 1, 2]).length == 0
    with pytest.raises(ValueError):
        c.insert(list(range(10)), rng(0, 10))
    with pytest.raises(ValueError):
        c.insert(list(range(8)), rng(0, 4))
    c.check_integrity()


def test_insert_of_present_prefix_returns_its_length() -> None:
    c = make()
    c.insert([5, 6, 7], ar(1, 2, 3))
    assert c.insert([5, 6, 7], ar(8, 9, 10)) == 3
    assert c.insert([5, 6], ar(8, 9)) == 2
    assert c.insert([5, 6, 7, 8], ar(8, 9, 10, 11)) == 3
    assert c.cached_tokens == 4
    assert c.match_prefix([5, 6, 7, 8]).slots.tolist() == [1, 2, 3, 11]
    c.check_integrity()


def test_insert_copies_slots_and_accepts_tensor_tokens() -> None:
    c = make()
    slots = ar(4, 5, 6)
    c.insert(torch.tensor([1, 2, 3]), slots)
    slots[:] = -1
    assert c.match_prefix((1, 2, 3)).slots.tolist() == [4, 5, 6]


def test_lock_prevents_eviction() -> None:
    c = make()
    c.insert([1, 2, 3], ar(0, 1, 2))
    c.insert([4, 5], ar(3, 4))
    m = c.match_prefix([1, 2])
    c.lock(m.handle)
    assert c.evictable_tokens == 3 and c.cached_tokens == 5  # [1, 2] locked, [3] and [4, 5] evictable
    freed = c.evict(100)
    assert sorted(freed.tolist()) == [2, 3, 4]
    assert c.evictable_tokens == 0 and c.cached_tokens == 2
    assert c.evict(1).numel() == 0
    c.check_integrity()
    c.unlock(m.handle)
    assert c.evictable_tokens == 2
    assert c.evict(1).tolist() == [0, 1]
    assert c.cached_tokens == 0
    c.check_integrity()


def test_lock_none_and_empty_match_are_noops() -> None:
    c = make()
    m = c.match_prefix([1, 2])
    assert m == PrefixMatch(0, m.slots, None)
    c.lock(m.handle)
    c.unlock(m.handle)
    c.lock(c.root)
    c.unlock(c.root)
    c.check_integrity()


def test_eviction_is_lru() -> None:
    c = make()
    c.insert([1, 1], ar(0, 1))
    c.insert([2, 2], ar(2, 3))
    c.insert([3, 3], ar(4, 5))
    c.match_prefix([1, 1])  # [1, 1] is now the most recent; [2, 2] the least
    assert c.evict(1).tolist() == [2, 3]
    assert c.evict(2).tolist() == [4, 5]
    assert c.evict(2).tolist() == [0, 1]


def test_eviction_cascades_to_parent_in_lru_order() -> None:
    c = make()
    c.insert([1, 2, 3], ar(0, 1, 2))
    c.insert([1, 2, 4], ar(0, 1, 3))  # [1, 2] -> {[3], [4]}
    c.insert([9], ar(9))
    # Order of use: [1,2,3] < [1,2,4] < [9]; the parent [1, 2] is as recent as [4].
    assert c.evict(1).tolist() == [2]
    assert c.evict(2).tolist() == [3, 0, 1]
    assert c.evict(5).tolist() == [9]
    assert c.cached_tokens == 0 and not c.root.children
    c.check_integrity()


def test_evict_returns_at_most_what_exists() -> None:
    c = make()
    c.insert([1, 2, 3], ar(0, 1, 2))
    c.insert([1, 5], ar(0, 7))
    assert c.evict(0).numel() == 0
    freed = c.evict(1000)
    assert sorted(freed.tolist()) == [0, 1, 2, 7] and freed.dtype == torch.int64
    assert c.evict(1000).numel() == 0
    assert c.cached_tokens == 0 and c.evictable_tokens == 0
    c.check_integrity()


def test_unlock_underflow_raises() -> None:
    c = make()
    c.insert([1, 2], ar(0, 1))
    m = c.match_prefix([1, 2])
    c.lock(m.handle)
    c.unlock(m.handle)
    with pytest.raises(AssertionError):
        c.unlock(m.handle)


def test_lock_of_evicted_handle_raises() -> None:
    c = make()
    c.insert([1, 2], ar(0, 1))
    m = c.match_prefix([1, 2])
    c.evict(2)
    with pytest.raises(ValueError):
        c.lock(m.handle)


def test_handle_survives_later_split() -> None:
    c = make()
    c.insert([1, 2, 3, 4], rng(0, 4))
    m = c.match_prefix([1, 2, 3, 4])
    c.lock(m.handle)
    c.match_prefix([1, 2, 9])  # splits the locked node; both halves must stay locked
    c.check_integrity()
    assert c.evictable_tokens == 0 and c.evict(4).numel() == 0
    c.unlock(m.handle)
    assert c.evictable_tokens == 4
    c.check_integrity()


def test_long_prompt_mismatch_past_chunk() -> None:
    c = make()
    seq = list(range(5000))
    c.insert(seq, rng(0, 5000))
    probe = seq[:4321] + [-1] + seq[4322:]
    m = c.match_prefix(probe)
    assert m.length == 4321 and m.slots.tolist() == list(range(4321))
    c.check_integrity()


# ------------------------------------------------------------------------------- stateful engine model
POOL = 16  # small, so that admitting requests often has to evict
Pos = tuple[tuple[int, ...], int]


class EngineModel(RuleBasedStateMachine):
    """A slot pool with a free list, running requests and the cache; every slot lives in exactly one place."""

    page_size = 1

    def __init__(self) -> None:
        super().__init__()
        self.cache = make(self.page_size)
        self.free: list[int] = list(range(POOL))
        self.running: list[dict] = []  # tokens, handle, matched, prefix (tree slots), own (private slots)
        self.ref: dict[Pos, int] = {}  # cached token position -> its slot, per the tree
        self.finished: list[list[int]] = []

    def seqs(self) -> st.SearchStrategy[list[int]]:
        ps = self.page_size
        return st.lists(st.integers(0, 2), min_size=0, max_size=12 // ps * ps).map(
            lambda xs: xs[: len(xs) - len(xs) % ps]
        )

    def pos(self, tokens: list[int], i: int) -> Pos:
        """Token ``i`` of ``tokens``, identified by the whole-page prefix that ends with its page."""
        return tuple(tokens[: (i // self.page_size + 1) * self.page_size]), i

    def held(self) -> set[int]:
        return {s for r in self.running for s in r["prefix"] + r["own"]}

    def absorb_evicted(self, freed: torch.Tensor) -> None:
        out = freed.tolist()
        assert freed.dtype == torch.int64 and len(set(out)) == len(out)
        assert not set(out) & self.held(), "evicted a slot a running request uses"
        assert not set(out) & set(self.free), "evicted a free slot"
        gone = set(out)
        self.ref = {k: v for k, v in self.ref.items() if v not in gone}
        assert set(self.ref.values()).isdisjoint(gone)
        self.free.extend(out)

    @rule(data=st.data())
    def new_request(self, data: st.DataObject) -> None:
        tokens = data.draw(self.seqs())
        peeked = self.cache.peek_prefix_len(tokens)
        m = self.cache.match_prefix(tokens)
        assert m.length == peeked, "peek_prefix_len differs from match_prefix"
        assert m.length % self.page_size == 0 and m.length <= len(tokens)
        assert m.slots.tolist() == [self.ref[self.pos(tokens, i)] for i in range(m.length)]
        self.cache.lock(m.handle)
        need = len(tokens) - m.length
        if need > len(self.free):
            before = self.cache.evictable_tokens
            freed = self.cache.evict(need - len(self.free))
            assert len(freed) >= need - len(self.free) or self.cache.evictable_tokens == 0
            assert len(freed) == before - self.cache.evictable_tokens
            self.absorb_evicted(freed)
        if need > len(self.free):
            self.cache.unlock(m.handle)  # not admitted
            return
        own, self.free = self.free[:need], self.free[need:]
        self.running.append(dict(tokens=tokens, handle=m.handle, matched=m.length, prefix=m.slots.tolist(), own=own))

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def finish_request(self, data: st.DataObject) -> None:
        r = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        tokens, slots = r["tokens"], r["prefix"] + r["own"]
        n = self.cache.insert(tokens, torch.tensor(slots, dtype=torch.int64))
        assert r["matched"] <= n <= len(tokens)
        for i in range(len(tokens)):
            assert (self.pos(tokens, i) in self.ref) == (i < n)
        self.free.extend(slots[r["matched"] : n])  # duplicates the cache declined
        for i in range(n, len(tokens)):
            self.ref[self.pos(tokens, i)] = slots[i]
        self.cache.unlock(r["handle"])
        self.finished.append(tokens)

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def abort_request(self, data: st.DataObject) -> None:
        r = self.running.pop(data.draw(st.integers(0, len(self.running) - 1)))
        self.free.extend(r["own"])
        self.cache.unlock(r["handle"])

    @rule(k=st.integers(0, 20))
    def evict(self, k: int) -> None:
        before = self.cache.evictable_tokens
        freed = self.cache.evict(k)
        assert len(freed) == before - self.cache.evictable_tokens
        assert len(freed) >= k or self.cache.evictable_tokens == 0
        assert len(freed) % self.page_size == 0
        self.absorb_evicted(freed)

    @precondition(lambda self: self.finished)
    @rule(data=st.data())
    def rematch_finished(self, data: st.DataObject) -> None:
        tokens = data.draw(st.sampled_from(self.finished))
        m = self.cache.match_prefix(tokens)
        expect = 0
        while expect < len(tokens) and self.pos(tokens, expect) in self.ref:
            expect += 1
        assert m.length == expect and expect % self.page_size == 0
        assert m.slots.tolist() == [self.ref[self.pos(tokens, i)] for i in range(m.length)]

    @invariant()
    def slots_accounted_for(self) -> None:
        self.cache.check_integrity()
        tree = tree_map(self.cache)
        assert tree == self.ref
        places = self.free + list(tree.values()) + [s for r in self.running for s in r["own"]]
        assert sorted(places) == list(range(POOL)), "leaked or double-freed slot"
        for r in self.running:  # locked prefixes are still cached, in the same slots
            assert [tree[self.pos(r["tokens"], i)] for i in range(r["matched"])] == r["prefix"]
        assert self.cache.cached_tokens == len(tree)
        locked = {self.pos(r["tokens"], i) for r in self.running for i in range(r["matched"])}
        assert self.cache.cached_tokens - self.cache.evictable_tokens == len(locked)


def tree_map(cache: RadixCache) -> dict[Pos, int]:
    """Every cached token position (as :meth:`EngineModel.pos` names it) and its slot, read off the tree."""
    ps, out = cache.page_size, {}
    stack: list[tuple[object, tuple[int, ...]]] = [(cache.root, ())]
    while stack:
        node, above = stack.pop()
        path = above + tuple(node.key)
        for j, slot in enumerate(node.value.tolist()):
            i = len(above) + j
            out[path[: (i // ps + 1) * ps], i] = slot
        stack.extend((child, path) for child in node.children.values())
    return out


class EngineModelPage2(EngineModel):
    page_size = 2


_settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestEnginePage1 = EngineModel.TestCase
TestEnginePage1.settings = _settings
TestEnginePage2 = EngineModelPage2.TestCase
TestEnginePage2.settings = _settings
