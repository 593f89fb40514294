"""Dummy weights (``--load-format dummy``): random tensors shaped like a model's checkpoint."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import nn


def dummy_checkpoint(
    model_dir: Path, device: torch.device, dtype: torch.dtype, seed: int = 0,
    shapes: Sequence[tuple[str, Sequence[int]]] | None = None,
) -> Iterator[tuple[str, torch.Tensor]] | None:  # fmt: skip
    """Random tensors named and shaped like the model's Hugging Face checkpoint (``--load-format dummy``),
    for ``load_weights``: ``shapes`` (the model's ``checkpoint_shapes()``) or, when it is ``None``, those of
    transformers' model built on the meta device; ``None`` when transformers cannot build the architecture.

    Each tensor is a function of ``(seed, name)`` only, and every tensor-parallel rank takes its shard of the
    same full tensor through the weight loaders: the model is the same at every TP size.
    """
    if shapes is None:
        try:
            from transformers import AutoConfig, AutoModelForCausalLM

            config = AutoConfig.from_pretrained(model_dir)
            with torch.device("meta"):  # shapes only: no memory, no initialisation
                shapes = [(n, p.shape) for n, p in AutoModelForCausalLM.from_config(config).named_parameters()]
        except Exception:  # noqa: BLE001 - an architecture transformers does not know: the caller falls back
            return None

    def tensors() -> Iterator[tuple[str, torch.Tensor]]:
        for name, shape in shapes:
            gen = torch.Generator(device=device).manual_seed(seed ^ zlib.crc32(name.encode()))
            yield name, torch.empty(shape, dtype=dtype, device=device).uniform_(-1e-2, 1e-2, generator=gen)

    return tensors()


def fill_dummy(model: nn.Module, seed: int = 0) -> None:
    """Give every parameter small random values, parameter by parameter: the fallback of
    :func:`dummy_checkpoint` (then a sharded model differs from the unsharded one)."""
    generators: dict[torch.device, torch.Generator] = {}
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            gen = generators.get(param.device)
            if gen is None:
                gen = generators[param.device] = torch.Generator(device=param.device).manual_seed(seed)
            param.uniform_(-1e-2, 1e-2, generator=gen)
