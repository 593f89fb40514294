"""Qwen3 dense models (``Qwen3ForCausalLM``), as a minisgl model plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minisgl_core import hookimpl

if TYPE_CHECKING:  # torch and the layers load only when the model is built
    from minisgl_core.contracts import ModelContext
    from minisgl_models.decoder import DecoderForCausalLM


def create(ctx: ModelContext) -> DecoderForCausalLM:
    """Build a Qwen3 model: the Llama-family decoder with RMSNorm on each query and key head."""
    from minisgl_models.decoder import DecoderForCausalLM

    return DecoderForCausalLM(ctx, qk_norm=True)


@hookimpl
def minisgl_register_models(register) -> None:
    register("Qwen3ForCausalLM", create, description="Qwen3 dense models (0.6B-32B)")
