"""Cache policies (prefix reuse and eviction). Implementations register through
``minisgl_register_cache_policies``; the core ships ``radix`` and ``naive``."""

from minisgl_core.cache.base import CacheContext, CachePolicy, PrefixMatch

__all__ = ["CacheContext", "CachePolicy", "PrefixMatch"]
