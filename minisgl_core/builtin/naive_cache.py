"""The ``naive`` cache policy: no prefix sharing; every request computes its whole prompt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from minisgl_core.contracts.cache import CacheContext, CachePolicy, PrefixMatch
from minisgl_core.contracts.options import reject_options


class NaiveCache(CachePolicy):
    """Keeps nothing: matches are always empty and every offered sequence is declined."""

    def __init__(self, ctx: CacheContext) -> None:
        self.page_size = ctx.page_size

    def match_prefix(self, token_ids: Sequence[int]) -> PrefixMatch:
        return PrefixMatch(0)

    def peek_prefix_len(self, token_ids: Sequence[int]) -> int:
        return 0

    def lock(self, handle: Any) -> None:
        pass

    def unlock(self, handle: Any) -> None:
        pass

    def insert(self, token_ids: Sequence[int], slots: torch.Tensor) -> int:
        if len(token_ids) != len(slots) or len(token_ids) % self.page_size:
            raise ValueError("insert takes equally long token ids and slots, a whole number of pages")
        return len(token_ids)

    def evict(self, num_tokens: int) -> torch.Tensor:
        return torch.empty(0, dtype=torch.int64)

    @property
    def evictable_tokens(self) -> int:
        return 0

    @property
    def cached_tokens(self) -> int:
        return 0


def create(ctx: CacheContext) -> NaiveCache:
    """Factory registered as the ``naive`` cache policy."""
    reject_options(ctx.options, "the naive cache")
    return NaiveCache(ctx)
