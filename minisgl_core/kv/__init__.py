"""KV-cache memory: the per-layer pool, its size, the page allocator and the request page table."""

from minisgl_core.kv.allocator import PageAllocator, pages_of_slots
from minisgl_core.kv.page_table import PageTable
from minisgl_core.kv.pool import KVPool
from minisgl_core.kv.sizing import kv_pages

__all__ = ["KVPool", "PageAllocator", "PageTable", "kv_pages", "pages_of_slots"]
