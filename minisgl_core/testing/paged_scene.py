"""A paged KV cache filled with random keys and values, and the :class:`ForwardBatch` es an engine would
build over it: the stage on which attention backends are compared without a model.

Pages are handed out in a shuffled order, so a backend that assumes contiguous pages, or reads slots it was
not given, produces different numbers. Requests may share prefix pages, as they do after a prefix-cache hit.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import torch

from minisgl_core.contracts.attention import AttentionContext
from minisgl_core.contracts.batch import ForwardBatch, Phase
from minisgl_core.kv import KVPool, PageTable


@dataclass
class SceneRequest:
    """One request of a scene: its page-table row and the KV slot of each of its positions."""

    row: int
    slots: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Extend:
    """``req`` computes positions ``start .. end - 1`` in a step (``start`` tokens are already cached)."""

    req: SceneRequest
    start: int
    end: int


class PagedScene:
    """A KV pool with random contents, a page table and requests laid out over shuffled pages."""

    def __init__(
        self,
        *,
        num_heads: int,
        num_kv_heads: int,
        head_dim: int,
        page_size: int,
        num_layers: int = 2,
        max_requests: int = 8,
        max_model_len: int = 320,
        num_pages: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        self.device = torch.device(device)
        self.page_size = page_size
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.num_layers = num_layers
        self.max_model_len = max_model_len
        self.dtype = dtype
        self.rng = random.Random(seed)
        self.gen = torch.Generator().manual_seed(seed)
        pages = num_pages or max_requests * -(-max_model_len // page_size) + 1
        self.pool = KVPool(num_layers, pages, page_size, num_kv_heads, head_dim, dtype, self.device)
        self.pool.buffer.copy_(torch.randn(self.pool.buffer.shape, generator=self.gen).to(dtype))
        self.table = PageTable(max_requests, max_model_len, self.device)
        self._free_pages = list(range(1, pages))  # page 0 stays reserved, as in the engine
        self.rng.shuffle(self._free_pages)
        self._free_rows = list(range(max_requests))
        self.rng.shuffle(self._free_rows)

    def context(
        self, pool: KVPool | None = None, dtype: torch.dtype | None = None, options: Mapping[str, str] | None = None
    ) -> AttentionContext:
        """The :class:`AttentionContext` a backend factory receives for this scene (optionally over another
        pool of the same shape, e.g. a float32 copy for the reference backend, and with plugin options)."""
        pool = pool or self.pool
        return AttentionContext(
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            num_layers=self.num_layers,
            page_size=self.page_size,
            kv_pool=pool,
            page_table=self.table.device_table,
            max_batch_size=self.table.num_rows - 1,
            max_model_len=self.max_model_len,
            dtype=dtype or self.dtype,
            device=self.device,
            options=MappingProxyType(dict(options or {})),
        )

    def pool_copy(self, dtype: torch.dtype) -> KVPool:
        """A pool of the same shape holding this pool's contents converted to ``dtype``."""
        p = self.pool
        copy = KVPool(p.num_layers, p.num_pages, p.page_size, p.num_kv_heads, p.head_dim, dtype, self.device)
        copy.buffer.copy_(p.buffer.to(dtype))
        return copy

    def request(self, length: int, share: SceneRequest | None = None, shared_len: int = 0) -> SceneRequest:
        """A request of ``length`` positions on fresh pages; its first ``shared_len`` positions (whole pages)
        reuse the slots of ``share``, like a prefix-cache hit."""
        if shared_len % self.page_size or (shared_len and share is None):
            raise ValueError("a shared prefix is a whole number of pages of another request")
        req = SceneRequest(self._free_rows.pop())
        if share is not None:
            req.slots = list(share.slots[:shared_len])
        self.grow(req, length)
        return req

    def release(self, req: SceneRequest) -> None:
        """Give ``req``'s page-table row back (its pages stay used: their KV is still compared)."""
        self._free_rows.append(req.row)

    def grow(self, req: SceneRequest, length: int) -> None:
        """Give ``req`` slots up to ``length`` positions (filling its partial last page first)."""
        ps = self.page_size
        while len(req.slots) < length:
            if len(req.slots) % ps == 0:
                page = self._free_pages.pop()
                req.slots.append(page * ps)
            else:
                req.slots.append(req.slots[-1] + 1)

    def batch(self, phase: Phase, extends: list[Extend]) -> ForwardBatch:
        """The batch of one step, as documented on :class:`ForwardBatch`; writes the requests' page-table
        rows up to each ``end`` first (the engine does the same before the model runs)."""
        dev = self.device
        if phase is Phase.DECODE and any(e.end - e.start != 1 for e in extends):
            raise ValueError("decode steps extend every request by exactly one token")
        for e in extends:
            self.grow(e.req, e.end)
            slots = torch.tensor(e.req.slots[: e.end], dtype=torch.int64)
            self.table.apply_writes([(e.req.row, slots)], lambda t: t.to(self.device))
        q_lens = [e.end - e.start for e in extends]
        kv_lens = [e.end for e in extends]
        cu_q = [0]
        cu_kv = [0]
        for q, kv in zip(q_lens, kv_lens):
            cu_q.append(cu_q[-1] + q)
            cu_kv.append(cu_kv[-1] + kv)
        positions = [p for e in extends for p in range(e.start, e.end)]
        out_slots = [s for e in extends for s in e.req.slots[e.start : e.end]]

        def t(values: list[int], dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(values, dtype=dtype, device=dev)

        return ForwardBatch(
            phase=phase,
            input_ids=torch.zeros(len(positions), dtype=torch.int64, device=dev),
            positions=t(positions, torch.int64),
            out_slots=t(out_slots, torch.int64),
            rows=t([e.req.row for e in extends], torch.int64),
            q_lens=t(q_lens, torch.int32),
            kv_lens=t(kv_lens, torch.int32),
            cu_q_lens=t(cu_q, torch.int32),
            cu_kv_lens=t(cu_kv, torch.int32),
            sample_indices=t([c - 1 for c in cu_q[1:]], torch.int64),
            q_lens_host=q_lens,
            kv_lens_host=kv_lens,
            page_table=self.table.device_table,
            page_size=self.page_size,
        )

    def qkv(self, num_tokens: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random ``q`` ``[T, heads, dim]`` and ``k``/``v`` ``[T, kv_heads, dim]`` in the scene's dtype."""

        def rand(heads: int) -> torch.Tensor:
            x = torch.randn((num_tokens, heads, self.head_dim), generator=self.gen)
            return x.to(dtype=self.dtype, device=self.device)

        return rand(self.num_heads), rand(self.num_kv_heads), rand(self.num_kv_heads)
