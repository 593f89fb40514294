"""Llama 2/3/3.1/3.2 models (``LlamaForCausalLM``, incl. ``llama3`` RoPE scaling), as a minisgl plugin."""

from __future__ import annotations

from typing import TYPE_CHECKING

from minisgl_core import hookimpl

if TYPE_CHECKING:  # torch and the layers load only when the model is built
    from minisgl_core.contracts import ModelContext
    from minisgl_models.decoder import DecoderForCausalLM


def create(ctx: ModelContext) -> DecoderForCausalLM:
    """Build a Llama model: the Llama-family decoder as is."""
    from minisgl_models.decoder import DecoderForCausalLM

    return DecoderForCausalLM(ctx, qk_norm=False)


@hookimpl
def minisgl_register_models(register) -> None:
    register("LlamaForCausalLM", create, description="Llama 2/3/3.1/3.2 (llama3 RoPE scaling)")
