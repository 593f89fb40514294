"""The cache-policy extension point: prefix reuse, locking and eviction of cached KV.

A policy decides *which* KV it keeps; the core owns the memory. Slots (``page * page_size + offset``) are
the currency: the core hands a finished request's slots to :meth:`CachePolicy.insert`, and gets slots back
from :meth:`CachePolicy.evict` to return to the page allocator. Every length a policy deals in is a whole
number of pages. All methods run in the scheduling process (rank 0), on the host, between engine steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class CacheContext:
    """What a cache-policy factory is told about the engine."""

    page_size: int
    num_pages: int
    device: torch.device
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's ``--cache-option KEY=VALUE`` flags (``LLM(cache_options=...)``), unparsed: values are strings."""


@dataclass
class PrefixMatch:
    """The longest cached prefix of a token sequence."""

    length: int
    """Matched tokens: a multiple of the page size."""
    slots: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    """Host int64 tensor of ``length`` slots holding the prefix's KV."""
    handle: Any = None
    """Opaque token for :meth:`CachePolicy.lock` / :meth:`CachePolicy.unlock` (``None`` when nothing matched)."""


class CachePolicy(ABC):
    """Keeps KV of finished requests for reuse by later requests that share a prefix."""

    @abstractmethod
    def match_prefix(self, token_ids: Sequence[int]) -> PrefixMatch:
        """Return the longest cached prefix of ``token_ids`` (whole pages). Does not lock it.

        The scheduler calls it when it considers admitting a request; it may call it again later (the match
        can change in between, as the cache inserts and evicts).
        """

    def peek_prefix_len(self, token_ids: Sequence[int]) -> int:
        """Return the length of the longest cached prefix of ``token_ids`` (whole pages), with no side effect.

        Scheduling policies call it (through ``SchedulerView.prefix_match_len``) in the scheduling process,
        while planning a step, to rank waiting requests; it may be called for every waiting request at every
        prefill step. It must equal ``match_prefix(token_ids).length`` and must not lock, refresh recency or
        restructure the cache, so that ranking requests does not change what is evicted next. The default
        returns ``match_prefix(token_ids).length``, which may touch recency: override it when
        :meth:`match_prefix` has side effects.
        """
        return self.match_prefix(token_ids).length

    @abstractmethod
    def lock(self, handle: Any) -> None:
        """Protect the prefix behind ``handle`` from eviction while a running request reads it.

        Called right after :meth:`match_prefix` (nothing is evicted in between) when a request is admitted
        with that match; ``None`` is a no-op.
        """

    @abstractmethod
    def unlock(self, handle: Any) -> None:
        """Undo one :meth:`lock`; called when the request finishes, is aborted or retracted."""

    @abstractmethod
    def insert(self, token_ids: Sequence[int], slots: torch.Tensor) -> int:
        """Offer a sequence's KV to the cache; ``len(token_ids) == len(slots)``, a multiple of the page size.

        Return ``n``, the number of leading tokens the cache did not take: it already held them (possibly in
        other slots) or declines to keep them. The cache owns ``slots[n:]`` from now on and hands them back
        only through :meth:`evict`. The caller stays responsible for ``slots[:n]``: in practice it frees
        ``slots[m:n]``, where ``m`` is the prefix it matched (and locked) at admission - those first ``m``
        slots are the cache's own. Lengths must be whole pages (``ValueError`` otherwise).
        """

    @abstractmethod
    def evict(self, num_tokens: int) -> torch.Tensor:
        """Drop unlocked entries, least valuable first, until at least ``num_tokens`` are freed or nothing
        evictable is left. Return the freed slots (whole pages) for the core to reuse."""

    @property
    @abstractmethod
    def evictable_tokens(self) -> int:
        """Tokens :meth:`evict` could free right now (cached and not locked)."""

    @property
    @abstractmethod
    def cached_tokens(self) -> int:
        """Tokens the cache owns in total (locked or not)."""

    def check_integrity(self) -> None:  # noqa: B027 - optional hook with a useful default
        """Raise ``AssertionError`` when internal invariants are broken (tests and debugging)."""
