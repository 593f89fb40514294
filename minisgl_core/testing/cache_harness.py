"""The core's side of the cache-policy contract, played out on the host and checked after every call.

:class:`CacheHarness` owns a pool of pages the way the core does: requests match a prefix, lock it, get
private pages for the rest (evicting under pressure), and on finishing offer their KV to the policy and
free what it did not take. It knows which slots the policy owns and for which token position, so it can
tell when a policy leaks a slot, frees one twice, returns a slot it does not own or one a running request
still reads, or matches a prefix with slots that hold other tokens' KV.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minisgl_core.contracts.cache import CachePolicy

Position = tuple[tuple[int, ...], int]
"""A token position identified by its index and every token up to the end of its page (its KV depends on
all of them)."""


@dataclass
class Running:
    """An admitted request: its tokens, the locked match and its slots (the matched ones first, then its
    private pages, whole, so possibly a few slots past its last token)."""

    tokens: list[int]
    matched: int
    handle: object
    slots: list[int]


class CacheHarness:
    """Drives ``policy`` like the engine does and asserts the contract after each step."""

    def __init__(self, policy: CachePolicy, page_size: int, num_pages: int) -> None:
        self.policy = policy
        self.ps = page_size
        self.num_pages = num_pages
        self.free_pages = list(range(1, num_pages))  # page 0 is reserved, as in the engine
        self.owned: dict[int, Position] = {}  # slot held by the policy -> the position it holds
        self.running: list[Running] = []
        self.hits = 0

    def pos(self, tokens: Sequence[int], i: int) -> Position:
        return tuple(tokens[: (i // self.ps + 1) * self.ps]), i

    # -- the engine's moves ---------------------------------------------------------------------------

    def match(self, tokens: list[int]) -> tuple[int, torch.Tensor, object]:
        m = self.policy.match_prefix(tokens)
        assert 0 <= m.length <= len(tokens) and m.length % self.ps == 0, f"match length {m.length} not whole pages"
        assert m.slots.dtype == torch.int64 and m.slots.numel() == m.length, "match slots: int64, one per token"
        for i, slot in enumerate(m.slots.tolist()):
            assert self.owned.get(slot) == self.pos(tokens, i), (
                f"match_prefix returned slot {slot} for position {i}, but the policy was never given that slot "
                "for these tokens (or already evicted it)"
            )
        return m.length, m.slots, m.handle

    def admit(self, tokens: list[int]) -> Running | None:
        """Match, lock and allocate like the scheduler; ``None`` when memory does not suffice."""
        length, slots, handle = self.match(tokens)
        self.policy.lock(handle)
        need = -(-(len(tokens) - length) // self.ps)
        if need > len(self.free_pages):
            self.evict((need - len(self.free_pages)) * self.ps)
        if need > len(self.free_pages):
            self.policy.unlock(handle)
            return None
        pages, self.free_pages = self.free_pages[:need], self.free_pages[need:]
        private = [p * self.ps + o for p in pages for o in range(self.ps)]  # whole pages, tail included
        req = Running(list(tokens), length, handle, slots.tolist() + private)
        self.running.append(req)
        self.hits += length
        return req

    def finish(self, req: Running) -> None:
        """Offer the page-aligned KV to the policy, free what it did not take, unlock."""
        self.running.remove(req)
        aligned = len(req.tokens) // self.ps * self.ps
        n = self.policy.insert(req.tokens[:aligned], torch.tensor(req.slots[:aligned], dtype=torch.int64))
        assert req.matched <= n <= aligned, f"insert returned {n}: must lie in [matched {req.matched}, {aligned}]"
        for i in range(n, aligned):
            slot = req.slots[i]
            assert slot not in self.owned, f"slot {slot} was handed to the policy twice"
            self.owned[slot] = self.pos(req.tokens, i)
        self._free_slots(req.slots[req.matched : n] + req.slots[aligned:])
        self.policy.unlock(req.handle)

    def abort(self, req: Running) -> None:
        """Drop a request without offering its KV (an abort, or a retraction of a request that computed
        nothing yet)."""
        self.running.remove(req)
        self._free_slots(req.slots[req.matched :])
        self.policy.unlock(req.handle)

    def evict(self, num_tokens: int) -> torch.Tensor:
        before = self.policy.evictable_tokens
        freed = self.policy.evict(num_tokens)
        assert freed.dtype == torch.int64 and freed.dim() == 1, "evict returns a 1-D int64 tensor of slots"
        out = freed.tolist()
        assert len(out) >= min(num_tokens, before), f"evict({num_tokens}) freed {len(out)} of {before} evictable"
        assert self.policy.evictable_tokens == before - len(out), "evictable_tokens did not drop by what was freed"
        assert len(set(out)) == len(out), "evict returned a slot twice"
        locked = {s for r in self.running for s in r.slots[: r.matched]}
        for slot in out:
            assert slot in self.owned, f"evict returned slot {slot}, which the policy does not own"
            assert slot not in locked, f"evict returned slot {slot} of a locked prefix a running request reads"
            del self.owned[slot]
        self._free_slots(out)
        return freed

    def _free_slots(self, slots: list[int]) -> None:
        pages = sorted({s // self.ps for s in slots})
        assert len(slots) == len(pages) * self.ps, "freed slots must form whole pages"
        for page in pages:
            assert set(range(page * self.ps, (page + 1) * self.ps)) <= set(slots), f"page {page} freed partly"
        assert not set(pages) & set(self.free_pages), "a page was freed twice"
        self.free_pages.extend(pages)

    # -- the invariant --------------------------------------------------------------------------------

    def check(self) -> None:
        """Every page is free, owned by the policy or private to one running request; totals agree."""
        self.policy.check_integrity()
        cached, evictable = self.policy.cached_tokens, self.policy.evictable_tokens
        assert cached == len(self.owned), f"cached_tokens {cached}, but the policy holds {len(self.owned)} slots"
        locked = {s for r in self.running for s in r.slots[: r.matched]}
        assert 0 <= evictable <= cached - len(locked), f"evictable_tokens {evictable} counts locked tokens"
        private = [s for r in self.running for s in r.slots[r.matched :]]
        slots = [p * self.ps + o for p in self.free_pages for o in range(self.ps)] + list(self.owned) + private
        every = set(range(self.ps, self.num_pages * self.ps))
        assert len(slots) == len(set(slots)), "a slot is in two places (double free or shared private page)"
        missing = every - set(slots)
        assert not missing, f"leaked slots: {sorted(missing)[:8]}"
