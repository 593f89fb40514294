"""How many KV pages an engine gets: from ``num_kv_tokens``, or from the device memory left after loading the
weights (``kv_memory_fraction`` of what is free, or ``gpu_memory_utilization`` of the total), the same number on
every tensor-parallel rank."""

from __future__ import annotations

import logging

import torch

from minisgl_core.config import EngineConfig
from minisgl_core.parallel import get_tp

logger = logging.getLogger("minisgl.engine")

CPU_KV_BUDGET_BYTES = 256 << 20
"""KV memory on CPU when ``num_kv_tokens`` is not given (CPU runs are tests and demos)."""


def kv_pages(config: EngineConfig, bytes_per_token: int, max_model_len: int, device: torch.device) -> int:
    """Number of KV pages, including the reserved page 0 (``ValueError`` when not even one page fits)."""
    if config.num_kv_tokens is not None:
        tokens = config.num_kv_tokens
    elif device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        budget = free * config.kv_memory_fraction
        if config.gpu_memory_utilization is not None:  # a share of the total, of which weights took their part
            budget = config.gpu_memory_utilization * total - (total - free)
        tokens = max(int(budget), 0) // bytes_per_token
    else:
        tokens = min(config.max_running_requests * max_model_len, CPU_KV_BUDGET_BYTES // bytes_per_token)
    pages = tokens // config.page_size
    if get_tp().size > 1:  # every rank must agree on the pool size
        t = torch.tensor([pages], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        pages = int(t.item())
    if pages < 1:
        raise ValueError("not enough memory for a single KV page; lower the model size or raise the budget")
    logger.info(
        "KV cache: %d tokens in %d pages of %d (%.2f GiB)",
        pages * config.page_size, pages, config.page_size, pages * config.page_size * bytes_per_token / 2**30,
    )  # fmt: skip
    return pages + 1
