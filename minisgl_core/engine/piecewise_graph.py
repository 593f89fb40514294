"""Piecewise CUDA graphs for prefill and mixed steps: the forward pass captured in pieces between attention
calls, one set of pieces per token-count bucket, attention itself run eagerly between them.

Outside attention, a prefill or mixed step of ``n`` tokens is a ``[n, hidden]`` matrix going through the same
kernels whatever requests it holds; only attention depends on which tokens belong to which request and which
cached keys they see. So for each bucket of ``T`` tokens the runner records the model's forward pass of ``T``
tokens cut at every attention call: piece 0 runs from the embedding to layer 0's attention input (norm, QKV
product, RoPE and KV store), piece ``i + 1`` from attention ``i``'s output to attention ``i + 1``'s input, and
the last piece through the final norm and the LM head. A step of ``n <= T`` tokens is padded to ``T`` (padding
stores its keys and values in the reserved page 0 and is never sampled), replays the pieces, and between them
calls the prefill backend on the ``n`` real tokens, planned for the real batch as in an eager step. This turns
the several hundred kernel launches of an eager forward pass (15.5-20.2 ms of host time per prefill step of
Qwen3-0.6B's 28 layers, measured on the H200 in the fifth session) into ``layers + 1`` graph launches and
``layers`` backend calls.

Queries, keys and values cross from a piece to attention through fixed buffers (each piece ends by copying
them there), attention's output crosses back through another, and the last piece copies the logits into a
third: one set shared by every layer and bucket, since steps and layers run one after another on one stream
(and a step's logits are sampled before the next step runs). So the graphs hold no memory of their own
between steps beyond their shared pool.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import torch

from minisgl_core.config.progress import progress
from minisgl_core.contracts.attention import AttentionBackend
from minisgl_core.contracts.batch import AttentionLayerSpec, ForwardBatch, KVStore, Phase

logger = logging.getLogger("minisgl.engine")


def token_buckets(max_tokens: int) -> list[int]:
    """Captured step sizes: 16, 32, 64, then powers of two and one and a half times powers of two (96, 128,
    192, 256, ...) up to ``max_tokens``, which is always included. A step pads to the next size, so at most a
    third of a step's tokens (half below 64 tokens) are padding."""
    sizes = [16, 32, 64]
    power = 64
    while power <= max_tokens:
        sizes += [power * 3 // 2, power * 2]
        power *= 2
    sizes = [s for s in sizes if s < max_tokens] + [max_tokens]
    return sorted(set(sizes))


class _AttentionCut:
    """Stands in for the attention backend while the pieces are recorded: copies the layer's queries, keys and
    values into the fixed buffers, ends the current piece, starts the next one and hands back the fixed output
    buffer (which the backend fills on replay)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        """q, k, v and attention's output for ``rows`` tokens, allocated by the first (largest, uncaptured)
        call: outside any graph's pool."""
        self.pool: object = None
        self.graph: torch.cuda.CUDAGraph | None = None
        """The piece being captured; ``None`` while warming up (the forward pass runs eagerly)."""
        self.pieces: list[torch.cuda.CUDAGraph] = []
        self.layers: list[AttentionLayerSpec] = []
        self.step: tuple[AttentionBackend, ForwardBatch] | None = None
        """Outside capture, the backend and real batch of an eager pass: attention then runs at the cut."""

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor:
        if self.buffers is None:
            fixed = [t.new_zeros((self.rows, *t.shape[1:])) for t in (q, k, v)]
            self.buffers = (*fixed, q.new_zeros((self.rows, q.shape[1] * q.shape[2])))  # type: ignore[assignment]
        n = q.shape[0]
        for buffer, t in zip(self.buffers, (q, k, v)):
            buffer[:n].copy_(t)
        if self.graph is not None:
            self.graph.capture_end()
            self.pieces.append(self.graph)
            self.layers.append(layer)
            self.begin()
        elif self.step is not None:
            self.attend(*self.step, layer)
        return self.buffers[3][:n]

    def attend(self, backend: AttentionBackend, batch: ForwardBatch, layer: AttentionLayerSpec) -> None:
        """Attention of ``layer`` for ``batch``'s real tokens, from the fixed buffers into the output buffer."""
        assert self.buffers is not None
        q, k, v, out = (t[: batch.num_tokens] for t in self.buffers)
        out.copy_(backend.forward(q, k, v, layer, batch))

    def begin(self) -> None:
        """Start capturing the next piece (on the current stream, in the shared memory pool)."""
        self.graph = torch.cuda.CUDAGraph()
        self.graph.capture_begin(pool=self.pool)

    def end(self) -> tuple[list[torch.cuda.CUDAGraph], list[AttentionLayerSpec]]:
        """Close the last piece; returns the pieces and the layer each cut belongs to."""
        assert self.graph is not None
        self.graph.capture_end()
        pieces, layers = [*self.pieces, self.graph], self.layers
        self.graph, self.pieces, self.layers = None, [], []
        return pieces, layers


class PiecewiseGraphRunner:
    """Captures ``model``'s forward pass per token bucket up to ``max_tokens`` and replays prefill and mixed
    steps through it. ``max_samples`` bounds the sampled rows of a step (the most requests a step holds).

    Until :meth:`capture` has run (and on a CPU, where nothing is captured) :meth:`run` makes the same padded
    pass through the same buffers eagerly, attention called at each cut: the data path of a replay without
    the graphs, which is how the CPU tests check padding, buffers and sampled rows against transformers.
    """

    def __init__(
        self,
        model: Callable[[ForwardBatch], torch.Tensor],
        kv_pool: KVStore,
        page_table: torch.Tensor,
        page_size: int,
        max_tokens: int,
        max_samples: int,
        device: torch.device,
    ) -> None:
        self.model = model
        self.kv_pool = kv_pool
        self.page_table = page_table
        self.page_size = page_size
        self.sizes = token_buckets(max_tokens)
        self.max_tokens = max_tokens
        self.max_samples = max_samples
        self.device = device
        self.input_ids = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.positions = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.out_slots = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.sample_indices = torch.zeros(max_tokens, dtype=torch.int64, device=device)
        self.cut = _AttentionCut(max_tokens)
        self.pieces: dict[int, list[torch.cuda.CUDAGraph]] = {}
        self.layers: dict[int, list[AttentionLayerSpec]] = {}
        self.logits: torch.Tensor | None = None
        """The sampled rows' logits every bucket's last piece copies its output into (one buffer for all)."""
        self.replays = 0
        """Steps run through the runner so far (tests and logs read it)."""

    def can_run(self, num_tokens: int, num_samples: int) -> bool:
        """Whether a step of ``num_tokens`` tokens sampling ``num_samples`` rows fits a bucket."""
        return num_tokens <= self.max_tokens and num_samples <= self._samples(num_tokens)

    def _bucket(self, num_tokens: int) -> int:
        return next(s for s in self.sizes if s >= num_tokens)

    def _samples(self, tokens: int) -> int:
        return min(tokens, self.max_samples)

    def _static_batch(self, tokens: int) -> ForwardBatch:
        """A ``tokens``-token step over the fixed buffers (all pad: KV slot 0 of the reserved page 0)."""
        one = torch.ones(1, dtype=torch.int32, device=self.device)
        return ForwardBatch(
            phase=Phase.PREFILL,
            input_ids=self.input_ids[:tokens],
            positions=self.positions[:tokens],
            out_slots=self.out_slots[:tokens],
            rows=torch.zeros(1, dtype=torch.int64, device=self.device),
            q_lens=one * tokens,
            kv_lens=one * tokens,
            cu_q_lens=torch.tensor([0, tokens], dtype=torch.int32, device=self.device),
            cu_kv_lens=torch.tensor([0, tokens], dtype=torch.int32, device=self.device),
            sample_indices=self.sample_indices[: self._samples(tokens)],
            q_lens_host=[tokens],
            kv_lens_host=[tokens],
            page_table=self.page_table,
            page_size=self.page_size,
            attn=self.cut,
            kv_pool=self.kv_pool,
        )

    @torch.inference_mode()
    def capture(self) -> None:
        """Warm up and capture every bucket, largest first (its warm-up allocates the fixed buffers)."""
        start = time.perf_counter()
        before = torch.cuda.memory_allocated(self.device)
        stream = torch.cuda.Stream(self.device)
        self.cut.pool = torch.cuda.graph_pool_handle()
        for tokens in progress(sorted(self.sizes, reverse=True), desc="capturing piecewise graphs", leave=False):
            batch = self._static_batch(tokens)
            torch.cuda.synchronize(self.device)
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                out = self.model(batch)  # eager: lazy initialisation, autotuning at this shape
                if self.logits is None:  # the largest bucket samples the most rows
                    self.logits = torch.empty_like(out)
                del out
                self.cut.begin()
                try:
                    out = self.model(batch)
                    self.logits[: out.shape[0]].copy_(out)
                finally:
                    pieces, layers = self.cut.end()
            torch.cuda.current_stream().wait_stream(stream)
            if not layers:  # attention inside a piece would replay the captured batch's metadata
                raise RuntimeError("the model never called batch.attn.forward, so its attention cannot be cut out")
            self.pieces[tokens], self.layers[tokens] = pieces, layers
        torch.cuda.synchronize(self.device)
        logger.info(
            "captured piecewise CUDA graphs for prefill and mixed steps of %d..%d tokens (%d sizes, %d pieces "
            "each) in %.2f s, %.0f MiB",
            self.sizes[0], self.sizes[-1], len(self.sizes), len(self.pieces[self.sizes[0]]),
            time.perf_counter() - start, (torch.cuda.memory_allocated(self.device) - before) / 2**20,
        )  # fmt: skip

    def run(self, batch: ForwardBatch, backend: AttentionBackend) -> torch.Tensor:
        """Run ``batch`` (built and planned by ``backend`` for its real tokens) through the pieces of its
        bucket; returns the logits of its sampled rows."""
        n, samples = batch.num_tokens, int(batch.sample_indices.shape[0])
        tokens = self._bucket(n)
        self.input_ids[:n].copy_(batch.input_ids)
        self.positions[:n].copy_(batch.positions)
        self.out_slots[:n].copy_(batch.out_slots)
        self.out_slots[n:tokens].zero_()  # padding writes to the reserved page, never over a request's KV
        self.sample_indices[:samples].copy_(batch.sample_indices)
        self.sample_indices[samples : self._samples(tokens)].zero_()
        self.replays += 1
        if not self.pieces:
            self.cut.step = (backend, batch)
            try:
                return self.model(self._static_batch(tokens))[:samples]
            finally:
                self.cut.step = None
        pieces = self.pieces[tokens]
        for piece, layer in zip(pieces, self.layers[tokens]):
            piece.replay()
            self.cut.attend(backend, batch, layer)
        pieces[-1].replay()
        assert self.logits is not None
        return self.logits[:samples]
