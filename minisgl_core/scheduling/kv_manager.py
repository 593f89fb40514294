"""KV mechanics of the scheduler: giving requests slots, sharing cached prefixes, taking slots back.

Invariant (checked by :meth:`KVManager.check`): every page except the reserved page 0 is in exactly one
place - the allocator's free list, the cache policy, or privately held by one admitted request.
"""

from __future__ import annotations

import numpy as np
import torch

from minisgl_core.contracts.cache import CachePolicy
from minisgl_core.contracts.request import Req
from minisgl_core.kv import PageAllocator, PageTable, pages_of_slots


def reusable_ids(req: Req) -> list[int]:
    """The tokens whose cached KV ``req`` may reuse: all it fills but the last (its logits must be computed);
    none while it scores its prompt (``prompt_logprobs`` need the logits of every position)."""
    if req.params.prompt_logprobs is not None and not req.output_ids:
        return []
    return req.all_ids[: req.fill_len - 1]


def pages_for(start: int, end: int, page_size: int) -> int:
    """New pages needed to grow a request from ``start`` to ``end`` tokens."""
    return -(-end // page_size) - -(-start // page_size)


class KVManager:
    """Owns the host side of KV memory for the scheduling process."""

    def __init__(self, allocator: PageAllocator, table: PageTable, cache: CachePolicy, page_size: int) -> None:
        self.allocator = allocator
        self.table = table
        self.cache = cache
        self.page_size = page_size

    @property
    def available_tokens(self) -> int:
        """Tokens obtainable now: free pages plus what the cache could evict."""
        return self.allocator.num_free_tokens + self.cache.evictable_tokens

    def ensure_free_pages(self, n: int) -> bool:
        """Evict from the cache until ``n`` pages are free; False when even that is not enough."""
        short = n - self.allocator.num_free_pages
        if short > 0:
            freed = self.cache.evict(short * self.page_size)
            self.allocator.free(pages_of_slots(freed, self.page_size))
        return self.allocator.num_free_pages >= n

    def admit(self, req: Req, match_len: int, match_slots: torch.Tensor, handle: object) -> None:
        """Give ``req`` a table row and its cached prefix (the match must already be locked)."""
        req.row = self.table.alloc_row()
        req.cached_len = req.kv_len = match_len
        req.cache_handle = handle
        if match_len:
            self.table.install(req.row, match_slots)

    def extend(self, req: Req, n: int) -> torch.Tensor:
        """Allocate slots for ``req``'s next ``n`` positions and record them; returns them (int64).

        The caller made sure the pages are free (:meth:`ensure_free_pages`).
        """
        start, ps, row = req.kv_len, self.page_size, req.row
        assert row is not None
        room = min((-start) % ps, n)
        parts = []
        if room:
            last = self.table.slot(row, start - 1)
            parts.append(torch.arange(last + 1, last + 1 + room, dtype=torch.int64))
        rest = n - room
        if rest:
            pages = self.allocator.alloc(-(-rest // ps))
            parts.append((pages[:, None] * ps + torch.arange(ps)).flatten()[:rest])
        slots = torch.cat(parts) if len(parts) > 1 else parts[0]
        self.table.assign(row, start, slots)
        req.kv_len += n
        return slots

    def extend_decode(self, reqs: list[Req]) -> torch.Tensor:
        """Allocate one slot per request (vectorised); the caller ensured enough free pages."""
        ps, n = self.page_size, len(reqs)
        rows = np.fromiter((r.row for r in reqs), dtype=np.int64, count=n)
        pos = np.fromiter((r.kv_len for r in reqs), dtype=np.int64, count=n)
        slots = self.table.last_slots(rows, pos - 1) + 1  # the slot after each request's last one
        need = pos % ps == 0  # the last page is full: start a new one
        n_new = int(need.sum())
        if n_new:
            slots[need] = self.allocator.alloc(n_new).numpy() * ps
        self.table.assign_next(rows, pos, slots)
        for r in reqs:
            r.kv_len += 1
        return torch.from_numpy(slots)

    def decode_pages_needed(self, reqs: list[Req]) -> int:
        return sum(1 for r in reqs if r.kv_len % self.page_size == 0)

    def cache_prompt(self, req: Req) -> None:
        """Share ``req``'s computed prompt with the prefix cache while it keeps running (its prefill just
        completed), so concurrent requests with the same prefix reuse it at once.

        Afterwards the cache owns what it kept, and ``req`` holds it locked (``cached_len`` grows). Where the
        cache already had the same tokens in other slots, ``req``'s duplicates are freed and its page-table
        row points at the cache's slots from the next step on (the page table queues the rewrite).
        """
        assert req.row is not None
        ps = self.page_size
        aligned = req.kv_len // ps * ps
        if aligned <= req.cached_len:
            return
        ids = req.all_ids[:aligned]
        ours = self.table.slots(req.row, aligned)
        self.cache.insert(ids, ours)
        match = self.cache.match_prefix(ids)
        kept = match.length
        if kept <= req.cached_len:
            return  # the policy keeps nothing more (e.g. naive)
        self.cache.lock(match.handle)
        self.cache.unlock(req.cache_handle)
        req.cache_handle = match.handle
        theirs = match.slots[:kept]
        differs = (theirs != ours[:kept])[req.cached_len :: ps]  # compare page starts only
        duplicates = ours[req.cached_len : kept][::ps][differs]
        req.cached_len = kept
        if bool(differs.any()):
            self.allocator.free(duplicates // ps)
            self.table.install(req.row, theirs)

    def release(self, req: Req) -> None:
        """Return ``req``'s KV: its computed prefix goes to the cache policy, the rest to the allocator."""
        assert req.row is not None
        ps, kv = self.page_size, req.kv_len
        ids = req.all_ids[:kv]
        kv = len(ids)  # never more positions than known tokens
        slots = self.table.slots(req.row, req.kv_len)
        aligned = kv // ps * ps
        kept_by_caller = self.cache.insert(ids[:aligned], slots[:aligned])
        if kept_by_caller < req.cached_len:
            raise AssertionError("cache policy lost a locked prefix")
        self.allocator.free(pages_of_slots(slots[req.cached_len : kept_by_caller], ps))
        if req.kv_len > aligned:  # the partial last page (and, after overlap, any page past known tokens)
            self.allocator.free(pages_of_slots(slots[aligned : -(-req.kv_len // ps) * ps], ps))
        self.cache.unlock(req.cache_handle)
        self.table.free_row(req.row)
        req.row, req.cache_handle, req.kv_len, req.cached_len = None, None, 0, 0

    def check(self, running: list[Req]) -> None:
        """Assert that no page is leaked or owned twice (tests and debugging)."""
        private = sum(
            -(-r.kv_len // self.page_size) - r.cached_len // self.page_size for r in running if r.row is not None
        )
        cached_pages = self.cache.cached_tokens // self.page_size
        total = self.allocator.num_free_pages + cached_pages + private
        assert total == self.allocator.capacity_pages, (
            f"page accounting broken: free {self.allocator.num_free_pages} + cached {cached_pages} + "
            f"private {private} != {self.allocator.capacity_pages}"
        )
        self.cache.check_integrity()
