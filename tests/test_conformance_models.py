"""The Qwen3 and Llama model plugins run the model conformance suite (token for token with transformers)."""

from __future__ import annotations

from minisgl_core.testing import ModelPluginSuite


class TestQwen3(ModelPluginSuite):
    architecture = "Qwen3ForCausalLM"
    tiny_arch = "qwen3"


class TestLlama(ModelPluginSuite):
    architecture = "LlamaForCausalLM"
    tiny_arch = "llama"


class TestQwen3CUDA(ModelPluginSuite):
    architecture = "Qwen3ForCausalLM"
    tiny_arch = "qwen3"
    device = "cuda"


class TestLlamaCUDA(ModelPluginSuite):
    architecture = "LlamaForCausalLM"
    tiny_arch = "llama"
    device = "cuda"
