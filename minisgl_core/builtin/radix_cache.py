"""The ``radix`` cache policy: a radix tree over token ids whose nodes own the KV slots of their tokens.

Every node's key is a whole number of pages; children are keyed by their first page of tokens. Locks count
on every node from a handle up to the root, so a node is locked iff some running request reads through it,
and an unlocked node has only unlocked descendants. Eviction removes unlocked leaves in LRU order, where
"recent" is a monotonically increasing operation counter (deterministic, not wall time).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from itertools import count
from typing import Any

import torch

from minisgl_core.contracts.cache import CacheContext, CachePolicy, PrefixMatch
from minisgl_core.contracts.options import reject_options

_CHUNK = 64  # tokens compared per list slice when locating a mismatch


def _empty_slots() -> torch.Tensor:
    return torch.empty(0, dtype=torch.int64)


def _common_len(key: list[int], tokens: list[int], start: int, limit: int) -> int:
    """Length of the common prefix of ``key`` and ``tokens[start:start + limit]`` (compared in C slices)."""
    n = min(len(key), limit)
    if key[:n] == tokens[start : start + n]:
        return n
    lo = 0  # a mismatch exists below n, so every chunk skipped here lies wholly inside [0, n)
    while key[lo : lo + _CHUNK] == tokens[start + lo : start + lo + _CHUNK]:
        lo += _CHUNK
    while key[lo] == tokens[start + lo]:
        lo += 1
    return lo


class _Node:
    """A run of tokens (``key``) and the slots (``value``) holding their KV."""

    __slots__ = ("key", "value", "children", "parent", "lock_ref", "last_access", "uid")

    def __init__(self, key: list[int], value: torch.Tensor, parent: _Node | None, uid: int, stamp: int) -> None:
        self.key = key
        self.value = value
        self.children: dict[tuple[int, ...], _Node] = {}
        self.parent = parent
        self.lock_ref = 0
        self.last_access = stamp
        self.uid = uid  # creation order: a deterministic tie-break for equal stamps


class RadixCache(CachePolicy):
    """Prefix-sharing KV cache over a radix tree of token ids, with LRU eviction of unlocked leaves."""

    def __init__(self, ctx: CacheContext) -> None:
        if ctx.page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {ctx.page_size}")
        self.page_size = ctx.page_size
        self._uids = count()
        self._clock = 0
        self.root = _Node([], _empty_slots(), None, next(self._uids), 0)
        self._leaves: set[_Node] = set()  # non-root nodes without children (locked or not)
        self._evictable = 0  # tokens in unlocked nodes
        self._protected = 0  # tokens in locked nodes

    # ----------------------------------------------------------------- helpers
    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    @staticmethod
    def _tokens(token_ids: Sequence[int]) -> list[int]:
        if isinstance(token_ids, list):
            return token_ids
        if isinstance(token_ids, torch.Tensor):
            return token_ids.tolist()
        return list(token_ids)

    def _split(self, node: _Node, k: int) -> _Node:
        """Cut ``node`` after ``k`` tokens (0 < k < len, page-aligned); return the new upper node."""
        parent = node.parent
        assert parent is not None and 0 < k < len(node.key) and k % self.page_size == 0
        upper = _Node(node.key[:k], node.value[:k].clone(), parent, next(self._uids), node.last_access)
        upper.lock_ref = node.lock_ref  # same requests read through both halves: totals are unchanged
        node.key, node.value, node.parent = node.key[k:], node.value[k:].clone(), upper
        upper.children[tuple(node.key[: self.page_size])] = node
        parent.children[tuple(upper.key[: self.page_size])] = upper
        return upper

    def _path(self, tokens: list[int]) -> Iterator[tuple[_Node, int]]:
        """Yield ``(node, k)`` for each node ``tokens`` (whole pages only) matches from the root down: ``k``
        of its tokens match, all of them except possibly in the last node. Changes nothing."""
        ps = self.page_size
        end = len(tokens) - len(tokens) % ps
        node, pos = self.root, 0
        while pos < end:
            child = node.children.get(tuple(tokens[pos : pos + ps]))
            if child is None:
                return
            k = _common_len(child.key, tokens, pos, end - pos)
            k -= k % ps  # >= ps: the first page matched through the dict key
            whole = k == len(child.key)
            yield child, k
            if not whole:  # decided before the caller may split ``child``
                return
            node, pos = child, pos + k

    def _walk(self, tokens: list[int]) -> tuple[_Node, int, list[torch.Tensor]]:
        """Follow ``tokens`` (whole pages only) down the tree, splitting where the match ends mid-node.

        Returns the deepest matched node (the root if none), the matched length and the matched slot runs.
        Touches every node on the path.
        """
        stamp = self._tick()
        node, pos, runs = self.root, 0, []
        for child, k in self._path(tokens):
            child.last_access = stamp
            if k < len(child.key):
                child = self._split(child, k)
            runs.append(child.value)
            node, pos = child, pos + k
        return node, pos, runs

    # ------------------------------------------------------------------- API
    def match_prefix(self, token_ids: Sequence[int]) -> PrefixMatch:
        """Longest cached whole-page prefix; ``handle`` is its deepest node (``None`` for an empty match).

        A match ending inside a node splits it, so the handle covers exactly the matched prefix.
        """
        node, length, runs = self._walk(self._tokens(token_ids))
        if length == 0:
            return PrefixMatch(0)
        return PrefixMatch(length, torch.cat(runs), node)

    def peek_prefix_len(self, token_ids: Sequence[int]) -> int:
        """Length of :meth:`match_prefix` without its side effects: no split, no recency update."""
        return sum(k for _, k in self._path(self._tokens(token_ids)))

    def lock(self, handle: Any) -> None:
        """Add one reference to every node from ``handle`` up to the root; ``None`` / the root is a no-op."""
        if handle is None or handle is self.root:
            return
        if handle.parent is None:
            raise ValueError("stale handle: its prefix was evicted between match_prefix and lock")
        node = handle
        while node is not self.root:
            if node.lock_ref == 0:
                self._evictable -= len(node.key)
                self._protected += len(node.key)
            node.lock_ref += 1
            node = node.parent

    def unlock(self, handle: Any) -> None:
        """Undo one :meth:`lock`; raises ``AssertionError`` if a node on the path is not locked."""
        if handle is None or handle is self.root:
            return
        node = handle
        while node is not self.root:
            assert node.lock_ref > 0, "unlock without a matching lock"
            node.lock_ref -= 1
            if node.lock_ref == 0:
                self._evictable += len(node.key)
                self._protected -= len(node.key)
            node = node.parent

    def insert(self, token_ids: Sequence[int], slots: torch.Tensor) -> int:
        """Cache ``token_ids`` -> ``slots``; return ``n``, the leading tokens that were already cached.

        Lengths must be equal and a multiple of the page size, else ``ValueError`` (a caller with a trailing
        partial page inserts the page-aligned part and frees the rest itself). The caller keeps
        ``slots[:n]``; the cache takes a copy of ``slots[n:]`` and owns those slots until :meth:`evict`.
        """
        tokens = self._tokens(token_ids)
        if len(tokens) != len(slots):
            raise ValueError(f"{len(tokens)} token ids but {len(slots)} slots")
        if len(tokens) % self.page_size:
            raise ValueError(f"length {len(tokens)} is not a multiple of page_size {self.page_size}")
        node, n, _ = self._walk(tokens)
        if n == len(tokens):
            return n
        value = slots[n:].to(device="cpu", dtype=torch.int64, copy=True)
        leaf = _Node(tokens[n:], value, node, next(self._uids), self._clock)
        node.children[tuple(tokens[n : n + self.page_size])] = leaf
        self._leaves.discard(node)
        self._leaves.add(leaf)
        self._evictable += len(value)
        return n

    def evict(self, num_tokens: int) -> torch.Tensor:
        """Remove unlocked leaves, least recently used first (a parent left as an unlocked leaf joins the
        queue), until ``>= num_tokens`` are freed or none is evictable. Returns the freed slots (int64)."""
        if num_tokens <= 0 or self._evictable == 0:
            return _empty_slots()
        heap = [(n.last_access, n.uid, n) for n in self._leaves if n.lock_ref == 0]
        heapq.heapify(heap)
        freed: list[torch.Tensor] = []
        num_freed = 0
        while heap and num_freed < num_tokens:
            _, _, node = heapq.heappop(heap)
            parent = node.parent
            assert parent is not None and not node.children and node.lock_ref == 0
            del parent.children[tuple(node.key[: self.page_size])]
            self._leaves.discard(node)
            node.parent = None  # marks the node (and any handle to it) as evicted
            freed.append(node.value)
            num_freed += len(node.key)
            self._evictable -= len(node.key)
            if parent is not self.root and not parent.children:
                self._leaves.add(parent)
                if parent.lock_ref == 0:
                    heapq.heappush(heap, (parent.last_access, parent.uid, parent))
        return torch.cat(freed) if freed else _empty_slots()

    @property
    def evictable_tokens(self) -> int:
        return self._evictable

    @property
    def cached_tokens(self) -> int:
        return self._evictable + self._protected

    def check_integrity(self) -> None:
        """Assert the tree's invariants: keys, page alignment, lock counts, totals, leaf set, unique slots."""
        ps = self.page_size
        evictable = protected = 0
        leaves: set[_Node] = set()
        values: list[torch.Tensor] = []
        stack = [self.root]
        while stack:
            node = stack.pop()
            for first, child in node.children.items():
                assert child.parent is node, "child's parent pointer is wrong"
                assert len(child.key) > 0 and len(child.key) % ps == 0, "key length not page-aligned"
                assert len(child.key) == len(child.value), "key and value lengths differ"
                assert child.value.dtype == torch.int64, "slots are not int64"
                assert first == tuple(child.key[:ps]), "child stored under the wrong first page"
                assert child.lock_ref >= 0, "negative lock count"
                assert node is self.root or child.last_access <= node.last_access, "parent older than child"
                stack.append(child)
            if node is self.root:
                continue
            assert node.lock_ref >= sum(c.lock_ref for c in node.children.values()), "lock not propagated"
            if node.lock_ref:
                protected += len(node.key)
            else:
                evictable += len(node.key)
            if not node.children:
                leaves.add(node)
            values.append(node.value)
        assert (evictable, protected) == (self._evictable, self._protected), "token totals out of sync"
        assert leaves == self._leaves, "leaf set out of sync"
        if values:
            all_slots = torch.cat(values)
            assert all_slots.unique().numel() == all_slots.numel(), "a slot appears twice in the tree"


def create(ctx: CacheContext) -> RadixCache:
    """Factory registered as the ``radix`` cache policy."""
    reject_options(ctx.options, "the radix cache")
    return RadixCache(ctx)
