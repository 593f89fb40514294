"""The ``flashinfer`` attention backend: FlashInfer's paged-KV prefill and decode kernels.

One plan per step, shared by every layer. Decode uses the tensor-core kernels by default
(``MINISGL_FLASHINFER_TENSOR_CORES=0`` selects FlashInfer's CUDA-core decode kernels instead). For
CUDA graphs, one decode wrapper per captured batch size owns fixed index buffers that
:meth:`prepare_replay` refills in place.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import torch

from minisgl_core.contracts import AttentionBackend, AttentionContext, AttentionLayerSpec, ForwardBatch, Phase
from minisgl_core.kernels import ops, use_triton
from minisgl_flashinfer.graph_replan import GraphReplanner, supported
from minisgl_flashinfer.plugin import SUPPORTED_HEAD_DIMS

WORKSPACE_BYTES = 256 << 20

logger = logging.getLogger("minisgl.flashinfer")


def decode_uses_tensor_cores() -> bool:
    return os.environ.get("MINISGL_FLASHINFER_TENSOR_CORES", "1") != "0"


class _Planned:
    """A FlashInfer wrapper plus the event after its last plan: FlashInfer re-uses one pinned host buffer
    per wrapper for plan data, so a new plan waits until the previous plan's copy has left it."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self.event: torch.cuda.Event | None = None

    def plan(self, *args: Any, **kwargs: Any) -> Any:
        self.wait()
        self.wrapper.plan(*args, **kwargs)
        self.record()
        return self.wrapper

    def wait(self) -> None:
        if self.event is not None:
            self.event.synchronize()

    def record(self) -> None:
        self.event = torch.cuda.Event()
        self.event.record()


SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)


class FlashInferAttention(AttentionBackend):
    supports_cuda_graph = True

    def __init__(self, ctx: AttentionContext) -> None:
        if ctx.dtype not in SUPPORTED_DTYPES:
            raise ValueError(
                f"FlashInfer attention runs in float16 or bfloat16, not {str(ctx.dtype).removeprefix('torch.')}: "
                "pass --dtype bfloat16 (or --attention torch to keep this dtype)"
            )
        if ctx.head_dim not in SUPPORTED_HEAD_DIMS:  # else nvcc fails on a static assertion, minutes later
            raise ValueError(
                f"FlashInfer attention needs a head size of {', '.join(map(str, SUPPORTED_HEAD_DIMS))}, not "
                f"{ctx.head_dim}: use --attention torch for this model"
            )
        import flashinfer

        self.flashinfer = flashinfer
        self.ctx = ctx
        self.pool = ctx.kv_pool
        self.tensor_cores = decode_uses_tensor_cores()
        self.workspace = torch.zeros(WORKSPACE_BYTES, dtype=torch.uint8, device=ctx.device)
        self.prefill = _Planned(flashinfer.BatchPrefillWithPagedKVCacheWrapper(self.workspace, "NHD"))
        self.decode = _Planned(
            flashinfer.BatchDecodeWithPagedKVCacheWrapper(self.workspace, "NHD", use_tensor_cores=self.tensor_cores)
        )
        self.graph_decode: dict[int, _Planned] = {}
        self.active: Any = None
        self._replanner: GraphReplanner | None = None
        self._graph_buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    # -- planning -------------------------------------------------------------------------------------

    def _paged_layout(self, batch: ForwardBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(kv page indptr [host], last page lengths [host], page indices [device]) of ``batch``."""
        ps = batch.page_size
        kv = torch.tensor(batch.kv_lens_host, dtype=torch.int32)
        pages = (kv + ps - 1) // ps
        indptr = torch.zeros(len(kv) + 1, dtype=torch.int32)
        torch.cumsum(pages, 0, out=indptr[1:])
        last = kv - (pages - 1) * ps
        total = int(indptr[-1])
        indptr_host, last_host = indptr.pin_memory(), last.pin_memory()
        device = self.ctx.device
        indptr_dev = indptr_host.to(device, non_blocking=True)
        if use_triton(batch.page_table):  # one kernel instead of a chain of gathers
            max_pages = int(pages.max()) if len(kv) else 0
            indices = ops().paged_kv_indices(batch.page_table, batch.rows, indptr_dev, total, max_pages, ps)
            return indptr_host, last_host, indices
        pages_dev = indptr_dev[1:] - indptr_dev[:-1]
        owner = torch.repeat_interleave(
            torch.arange(len(kv), device=device), pages_dev.to(torch.int64), output_size=total
        )
        page_pos = torch.arange(total, device=device, dtype=torch.int64) - indptr_dev[owner].to(torch.int64)
        indices = batch.page_table[batch.rows[owner], page_pos * ps] // ps
        return indptr_host, last_host, indices.to(torch.int32)

    def _max_pages(self, max_requests: int) -> int:
        """Page indices ``max_requests`` requests can need (shared prefix pages count once per request)."""
        return max_requests * -(-self.ctx.max_model_len // self.ctx.page_size)

    def _plan_args(self) -> dict[str, Any]:
        c = self.ctx
        return dict(
            num_qo_heads=c.num_heads,
            num_kv_heads=c.num_kv_heads,
            page_size=c.page_size,
            q_data_type=c.dtype,
            kv_data_type=self.pool.dtype,
        )

    def _plan_decode(self, planned: _Planned, batch: ForwardBatch) -> None:
        indptr, last, indices = self._paged_layout(batch)
        args = self._plan_args()
        self.active = planned.plan(
            indptr, indices, last, args["num_qo_heads"], args["num_kv_heads"], self.ctx.head_dim,
            args["page_size"], q_data_type=args["q_data_type"], kv_data_type=args["kv_data_type"],
        )  # fmt: skip

    def prepare(self, batch: ForwardBatch) -> None:
        if batch.phase is Phase.DECODE:
            self._plan_decode(self.decode, batch)
            return
        indptr, last, indices = self._paged_layout(batch)
        q = torch.tensor(batch.q_lens_host, dtype=torch.int32)
        qo_indptr = torch.zeros(len(q) + 1, dtype=torch.int32)
        torch.cumsum(q, 0, out=qo_indptr[1:])
        args = self._plan_args()
        self.active = self.prefill.plan(
            qo_indptr.pin_memory(), indptr, indices, last, args["num_qo_heads"], args["num_kv_heads"],
            self.ctx.head_dim, args["page_size"], causal=True, q_data_type=args["q_data_type"],
            kv_data_type=args["kv_data_type"],
        )  # fmt: skip

    # -- CUDA graphs ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def init_cuda_graph(self, max_batch_size: int) -> None:
        device = self.ctx.device
        self._graph_buffers = (
            torch.zeros(max_batch_size + 1, dtype=torch.int32, device=device),
            torch.zeros(self._max_pages(max_batch_size), dtype=torch.int32, device=device),
            torch.zeros(max_batch_size, dtype=torch.int32, device=device),
        )
        if use_triton(self._graph_buffers[0]):
            c = self.ctx
            sms = torch.cuda.get_device_properties(device).multi_processor_count
            self._replanner = GraphReplanner(max_batch_size, c.num_heads, c.num_kv_heads, c.head_dim, sms)

    @torch.inference_mode()
    def prepare_capture(self, batch: ForwardBatch) -> None:
        assert self._graph_buffers is not None, "init_cuda_graph first"
        bs = batch.batch_size
        indptr, indices, last = self._graph_buffers
        wrapper = self.flashinfer.BatchDecodeWithPagedKVCacheWrapper(
            self.workspace, "NHD", use_cuda_graph=True, use_tensor_cores=self.tensor_cores,
            paged_kv_indptr_buffer=indptr[: bs + 1], paged_kv_indices_buffer=indices,
            paged_kv_last_page_len_buffer=last[:bs],
        )  # fmt: skip
        planned = self.graph_decode[bs] = _Planned(wrapper)
        self._plan_decode(planned, batch)  # FlashInfer's own plan sets the wrapper up
        if self._replanner is not None and supported(wrapper):  # replays will be planned the same way
            self._replan(planned, batch, capture=True)

    @torch.inference_mode()  # the fixed buffers are inference tensors (created while capturing)
    def prepare_replay(self, batch: ForwardBatch) -> None:
        planned = self.graph_decode[batch.batch_size]
        if self._replanner is None or not supported(planned.wrapper):
            self._plan_decode(planned, batch)
        else:
            self._replan(planned, batch)

    def _replan(self, planned: _Planned, batch: ForwardBatch, capture: bool = False) -> None:
        """The fast re-plan of a graph wrapper, once its previous plan has left FlashInfer's pinned buffer."""
        assert self._replanner is not None
        planned.wait()
        self._replanner.replan(planned.wrapper, batch, capture)
        planned.record()
        self.active = planned.wrapper

    # -- attention --------------------------------------------------------------------------------------

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor:
        out = self.active.run(q.contiguous(), self.pool.paged(layer.layer_id))
        return out.reshape(q.shape[0], -1)


def create(ctx: AttentionContext) -> FlashInferAttention:
    """Factory registered as the ``flashinfer`` attention backend."""
    if ctx.device.type != "cuda":
        raise ValueError("the flashinfer attention backend needs a CUDA device")
    return FlashInferAttention(ctx)
