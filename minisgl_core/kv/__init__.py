"""KV-cache memory: the per-layer pool, the page allocator and the request page table."""

from minisgl_core.kv.allocator import PageAllocator, pages_of_slots
from minisgl_core.kv.page_table import PageTable
from minisgl_core.kv.pool import KVPool

__all__ = ["KVPool", "PageAllocator", "PageTable", "pages_of_slots"]
