"""Building a model plugin's module on the right device and dtype, and filling its weights."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from minisgl_core.checkpoint import dummy_checkpoint, fill_dummy, iter_safetensors
from minisgl_core.contracts.model import CausalLM, ModelContext
from minisgl_core.plugins import MODEL, build

logger = logging.getLogger("minisgl.engine")

_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def resolve_dtype(requested: str, config_dtype: str | None, device: torch.device) -> torch.dtype:
    """``auto`` takes the checkpoint's dtype (float32 when it names none); float16 runs as float32 on CPU."""
    if requested != "auto":
        return _DTYPES[requested]
    dtype = _DTYPES.get(str(config_dtype).replace("torch.", ""), torch.float32)
    if device.type == "cpu" and dtype is torch.float16:
        return torch.float32
    return dtype


def build_model(ctx: ModelContext, model_dir: Path, load_format: str, seed: int) -> CausalLM:
    """Create the registered architecture for ``ctx.config`` and load (or fake) its weights."""
    start = time.perf_counter()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(ctx.dtype)
    try:
        with torch.device(ctx.device):
            model = build(MODEL, ctx.config.architecture, ctx, CausalLM)
    finally:
        torch.set_default_dtype(previous)
    model.eval()
    weights = None
    if load_format == "dummy":
        weights = dummy_checkpoint(model_dir, ctx.device, ctx.dtype, seed, model.checkpoint_shapes())
        if weights is None:
            if ctx.tp.size > 1:
                logger.warning("dummy weights of %s differ between TP sizes", ctx.config.architecture)
            fill_dummy(model, seed)
    else:
        weights = iter_safetensors(model_dir, lazy=ctx.tp.size > 1, show_progress=ctx.tp.is_primary)
    if weights is not None:
        with torch.no_grad():
            model.load_weights(weights)
    logger.info(
        "loaded %s (%s, %s weights) in %.1f s",
        ctx.config.architecture, ctx.dtype, load_format, time.perf_counter() - start,
    )  # fmt: skip
    return model
