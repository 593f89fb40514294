"""Free-page bookkeeping for the KV pool (host side; rank 0 decides, other ranks follow the plan)."""

from __future__ import annotations

import torch


def pages_of_slots(slots: torch.Tensor, page_size: int) -> torch.Tensor:
    """The pages covered by ``slots``, a page-aligned run of whole pages (every ``page_size``-th slot)."""
    return slots[::page_size] // page_size


class PageAllocator:
    """Hands out and takes back KV pages. Page 0 is reserved (dummy writes of padded requests)."""

    def __init__(self, num_pages: int, page_size: int) -> None:
        if num_pages < 2:
            raise ValueError("the KV pool needs at least 2 pages (page 0 is reserved)")
        self.num_pages = num_pages
        self.page_size = page_size
        self._free = torch.arange(1, num_pages, dtype=torch.int64)
        self._free_count = num_pages - 1

    @property
    def num_free_pages(self) -> int:
        return self._free_count

    @property
    def num_free_tokens(self) -> int:
        return self._free_count * self.page_size

    @property
    def capacity_pages(self) -> int:
        """Pages that can ever be handed out (all but the reserved one)."""
        return self.num_pages - 1

    def alloc(self, n: int) -> torch.Tensor:
        """Take ``n`` free pages; the caller checked :attr:`num_free_pages` first."""
        if n > self._free_count:
            raise RuntimeError(f"KV pool exhausted: asked for {n} pages, {self._free_count} free")
        start = self._free_count - n
        pages = self._free[start : self._free_count].clone()
        self._free_count = start
        return pages

    def free(self, pages: torch.Tensor) -> None:
        """Give ``pages`` back."""
        n = pages.numel()
        if n == 0:
            return
        end = self._free_count + n
        if end > self.num_pages - 1:
            raise RuntimeError("more pages freed than were allocated (double free)")
        if end > self._free.numel():
            self._free = torch.cat([self._free, torch.empty(end - self._free.numel(), dtype=torch.int64)])
        self._free[self._free_count : end] = pages
        self._free_count = end
