"""CUDA graphs for decode steps: captured once per batch size, replayed with new contents.

Every decode step of batch size ``b`` replays the graph of the smallest captured size ``>= b``; the extra
entries are dummy requests (the page table's dummy row, KV slot 0 of the reserved page 0), so padding never
touches real KV. The graph covers the whole model forward pass; the host only refreshes a handful of fixed
buffers (one pinned copy), writes the page table and lets the attention backend refill its metadata.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import numpy as np
import torch

from minisgl_core.config.progress import progress
from minisgl_core.contracts.attention import HOST_RING, AttentionBackend
from minisgl_core.contracts.batch import ForwardBatch, Phase
from minisgl_core.engine.plan import StepPlan
from minisgl_core.kv import KVPool, PageTable

logger = logging.getLogger("minisgl.engine")

_ROWS, _POSITIONS, _SLOTS, _KV_LENS = range(4)


def graph_batch_sizes(max_bs: int) -> list[int]:
    """1, 2, 4, 8, then every multiple of 8 up to ``max_bs`` (and ``max_bs`` itself)."""
    sizes = [s for s in (1, 2, 4) if s < max_bs] + list(range(8, max_bs + 1, 8))
    if not sizes or sizes[-1] != max_bs:
        sizes.append(max_bs)
    return sorted(set(sizes))


def capture_graph(
    forward: Callable[[], torch.Tensor], stream: torch.cuda.Stream, pool: object = None
) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
    """Run ``forward`` once on ``stream`` (lazy initialisation, autotuning), then capture it into a graph
    (in memory ``pool`` when given); returns the graph and the output tensor it writes on every replay."""
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        forward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool, stream=stream):
        out = forward()
    return graph, out


class CudaGraphRunner:
    """Captures and replays the decode forward pass of ``model`` with ``backend``."""

    def __init__(
        self,
        model: Callable[[ForwardBatch], torch.Tensor],
        backend: AttentionBackend,
        kv_pool: KVPool,
        page_table: PageTable,
        last_token: torch.Tensor,
        page_size: int,
        max_bs: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.backend = backend
        self.kv_pool = kv_pool
        self.page_table = page_table
        self.last_token = last_token
        self.dummy_row = page_table.dummy_row
        self.page_size = page_size
        self.max_bs = max_bs
        self.sizes = graph_batch_sizes(max_bs)
        self.device = device
        self.meta = torch.zeros((4, max_bs), dtype=torch.int64, device=device)
        self.host = torch.zeros((HOST_RING, 4 * max_bs), dtype=torch.int64, pin_memory=device.type == "cuda")
        self.turn = 0
        self.input_ids = torch.zeros(max_bs, dtype=torch.int64, device=device)
        self.kv_lens = torch.ones(max_bs, dtype=torch.int32, device=device)
        self.q_lens = torch.ones(max_bs, dtype=torch.int32, device=device)
        self.cu_q_lens = torch.arange(max_bs + 1, dtype=torch.int32, device=device)
        self.cu_kv_lens = torch.zeros(max_bs + 1, dtype=torch.int32, device=device)
        self.sample_indices = torch.arange(max_bs, dtype=torch.int64, device=device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.outputs: dict[int, torch.Tensor] = {}

    def can_run(self, batch_size: int) -> bool:
        return batch_size <= self.max_bs and bool(self.graphs)

    def _padded_size(self, batch_size: int) -> int:
        return next(s for s in self.sizes if s >= batch_size)

    def _batch(self, bs: int, kv_lens_host: list[int]) -> ForwardBatch:
        return ForwardBatch(
            phase=Phase.DECODE,
            input_ids=self.input_ids[:bs],
            positions=self.meta[_POSITIONS, :bs],
            out_slots=self.meta[_SLOTS, :bs],
            rows=self.meta[_ROWS, :bs],
            q_lens=self.q_lens[:bs],
            kv_lens=self.kv_lens[:bs],
            cu_q_lens=self.cu_q_lens[: bs + 1],
            cu_kv_lens=self.cu_kv_lens[: bs + 1],
            sample_indices=self.sample_indices[:bs],
            q_lens_host=[1] * bs,
            kv_lens_host=kv_lens_host,
            page_table=self.page_table.device_table,
            page_size=self.page_size,
            attn=self.backend,
            kv_pool=self.kv_pool,
            padded_batch_size=bs,
        )

    def _forward(self, batch: ForwardBatch) -> torch.Tensor:
        """What the graph records: gather input tokens on the device, run the model."""
        torch.index_select(self.last_token, 0, batch.rows, out=batch.input_ids)
        return self.model(batch)

    def _fill(self, bs: int, rows: list[int], slots: torch.Tensor, kv_lens: list[int]) -> None:
        """Copy one decode step (padded to ``bs`` with dummy requests) into the fixed buffers."""
        n = len(rows)
        host = self.host[self.turn, : 4 * bs].view(4, bs)
        self.turn = (self.turn + 1) % HOST_RING
        h = host.numpy()
        kv = np.asarray(kv_lens, dtype=np.int64)
        h[_ROWS, :n] = rows
        h[_ROWS, n:] = self.dummy_row
        h[_POSITIONS, :n] = kv - 1
        h[_POSITIONS, n:] = 0
        h[_SLOTS, :n] = slots.numpy()
        h[_SLOTS, n:] = 0
        h[_KV_LENS, :n] = kv
        h[_KV_LENS, n:] = 1
        self.meta[:, :bs].copy_(host, non_blocking=True)
        self.kv_lens[:bs].copy_(self.meta[_KV_LENS, :bs])
        torch.cumsum(self.kv_lens[:bs], 0, out=self.cu_kv_lens[1 : bs + 1])
        self.page_table.write_step(self.meta[_ROWS, :bs], self.meta[_POSITIONS, :bs], self.meta[_SLOTS, :bs])

    @torch.inference_mode()
    def capture(self) -> None:
        """Capture one graph per batch size, largest first so smaller ones reuse its memory pool."""
        start = time.perf_counter()
        self.backend.init_cuda_graph(self.max_bs)
        pool = None
        stream = torch.cuda.Stream(self.device)
        for bs in progress(sorted(self.sizes, reverse=True), desc="capturing CUDA graphs", leave=False):
            self._fill(bs, [], torch.empty(0, dtype=torch.int64), [])
            batch = self._batch(bs, [1] * bs)
            self.backend.prepare_capture(batch)
            graph, out = capture_graph(functools.partial(self._forward, batch), stream, pool)
            pool = graph.pool()
            self.graphs[bs] = graph
            self.outputs[bs] = out
        torch.cuda.synchronize(self.device)
        logger.info(
            "captured %d CUDA graphs (batch sizes %d..%d) in %.2f s",
            len(self.graphs), self.sizes[0], self.sizes[-1], time.perf_counter() - start,
        )  # fmt: skip

    def replay(self, plan: StepPlan) -> tuple[ForwardBatch, torch.Tensor]:
        """Run decode ``plan`` through its graph; returns the (padded) batch and the real rows' logits."""
        n = plan.batch_size
        bs = self._padded_size(n)
        self._fill(bs, plan.rows, plan.out_slots, plan.kv_lens)
        batch = self._batch(bs, plan.kv_lens + [1] * (bs - n))
        self.backend.prepare_replay(batch)
        self.graphs[bs].replay()
        return batch, self.outputs[bs][:n]
