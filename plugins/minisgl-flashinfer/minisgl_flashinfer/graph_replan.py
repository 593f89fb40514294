"""Re-planning captured FlashInfer decode wrappers with little host work.

Every decode step that replays a CUDA graph must re-plan its wrapper: the graph reads the page indices and
the split-KV work partition from buffers the plan fills. FlashInfer 0.5's ``plan`` spends about a
millisecond of host time per step on checks, tensor conversions and a Python ``max`` over a tensor. For a
wrapper that is already planned in CUDA-graph mode, the same effect takes three asynchronous copies, one
Triton kernel (page indices written straight into the wrapper's buffer) and the C++ scheduler call.

In CUDA-graph mode FlashInfer always takes its split-KV path, so that one captured launch fits any batch:
every layer then writes float32 partial results and runs a second, merge kernel. Its plan only ever
splits a batch that fits two thread blocks per SM (``2 * SMs // kv_heads`` requests); a larger batch is
one block per request and KV head whatever its lengths. For graph batches above that size the re-planner
therefore plans as FlashInfer does outside graphs: the same launch for every batch of that size (checked
on every replay against the one captured), with the output written directly and no merge kernel.

This relies on FlashInfer 0.5's wrapper attributes (checked by :func:`supported`; the backend falls back
to ``plan`` when they are missing). The GPU tests in this package compare graph replays with the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from minisgl_core.contracts import HOST_RING, ForwardBatch
from minisgl_core.kernels import ops

_ATTRIBUTES = (
    "_cached_module", "_float_workspace_buffer", "_int_workspace_buffer", "_pin_memory_int_workspace_buffer",
    "_paged_kv_indptr_buf", "_paged_kv_indices_buf", "_paged_kv_last_page_len_buf", "_fixed_batch_size",
)  # fmt: skip


def supported(wrapper: Any) -> bool:
    """True for a planned tensor-core decode wrapper in CUDA-graph mode with the attributes used here."""
    if not all(hasattr(wrapper, a) for a in _ATTRIBUTES):
        return False
    return bool(getattr(wrapper, "use_tensor_cores", False)) and getattr(wrapper, "_backend", "") != "trtllm-gen"


class GraphReplanner:
    """Fast re-plan of graph decode wrappers for batches up to ``max_batch_size``."""

    def __init__(self, max_batch_size: int, num_heads: int, num_kv_heads: int, head_dim: int, num_sms: int) -> None:
        self.max_split_batch = 2 * num_sms // num_kv_heads
        """The largest batch FlashInfer's plan may split over the KV sequence; larger ones never split."""
        self.captured: dict[int, list[int]] = {}
        """Plan of each graph batch size above :attr:`max_split_batch`, as captured."""
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.host = torch.zeros((HOST_RING, 3, max_batch_size + 1), dtype=torch.int32, pin_memory=True)
        self.host_np = self.host.numpy()
        self.turn = 0
        self.qo_indptr = torch.arange(max_batch_size + 1, dtype=torch.int32)

    def replan(self, wrapper: Any, batch: ForwardBatch, capture: bool = False) -> None:
        """Plan ``wrapper`` (captured for ``batch.batch_size``, or about to be with ``capture``) for ``batch``;
        the caller makes sure the wrapper's previous plan has left its pinned buffer."""
        bs, ps = batch.batch_size, batch.page_size
        assert bs == wrapper._fixed_batch_size, "a graph wrapper serves exactly its captured batch size"
        slot = self.turn
        self.turn = (self.turn + 1) % HOST_RING
        host, host_np = self.host[slot], self.host_np[slot]
        kv = np.asarray(batch.kv_lens_host, dtype=np.int32)
        pages = (kv + (ps - 1)) // ps
        indptr, last, kv_lens = host_np[0, : bs + 1], host_np[1, :bs], host_np[2, :bs]
        indptr[0] = 0
        np.cumsum(pages, out=indptr[1:])
        last[:] = kv - (pages - 1) * ps
        kv_lens[:] = kv
        total, max_pages = int(indptr[bs]), int(pages.max())
        if total > wrapper._paged_kv_indices_buf.numel():
            raise ValueError(f"{total} KV pages exceed the graph's index buffer")
        indptr_t, last_t, kv_lens_t = host[0, : bs + 1], host[1, :bs], host[2, :bs]
        wrapper._paged_kv_indptr_buf.copy_(indptr_t, non_blocking=True)
        wrapper._paged_kv_last_page_len_buf.copy_(last_t, non_blocking=True)
        ops().paged_kv_indices(
            batch.page_table, batch.rows, wrapper._paged_kv_indptr_buf, total, max_pages, ps,
            out=wrapper._paged_kv_indices_buf[:total],
        )  # fmt: skip
        wrapper._max_kv_len = int(kv.max())
        graph_mode = bs <= self.max_split_batch  # else: FlashInfer's eager plan, the same for any such batch
        plan_info = wrapper._cached_module.plan(
            wrapper._float_workspace_buffer, wrapper._int_workspace_buffer,
            wrapper._pin_memory_int_workspace_buffer, self.qo_indptr[: bs + 1], indptr_t, kv_lens_t,
            bs, bs, self.num_heads, self.num_kv_heads, ps, graph_mode, self.head_dim, self.head_dim,
            False, -1, -1, False, 0,
        )  # fmt: skip  # causal, window_left, fixed_split_size, disable_split_kv, colocated CTAs
        if not graph_mode:
            if capture:
                self.captured[bs] = list(plan_info)
            elif list(plan_info) != self.captured.get(bs):
                raise RuntimeError(f"FlashInfer planned batch size {bs} differently from its captured graph")
        wrapper._plan_info = plan_info
