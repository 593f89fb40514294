"""Tiny random Hugging Face models and an offline byte-level tokenizer, written to a folder.

They let the ``demo`` model (and the tests, through ``minisgl_core.testing``) run the real loading path -
``config.json``, safetensors, ``tokenizer.json`` - without any download.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "qwen3": dict(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=1024, tie_word_embeddings=True,
    ),
    "llama": dict(
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    ),
}  # fmt: skip


def byte_tokenizer():
    """A byte-level tokenizer (256 byte tokens + ChatML specials) built offline, as a transformers
    ``PreTrainedTokenizerFast`` with a chat template. Every UTF-8 string round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for tok in SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS})
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_config(arch: str = "qwen3", **overrides: Any):
    """The transformers config of the tiny random ``arch`` ("qwen3" or "llama"), sized for the byte
    tokenizer, with ``architectures`` set and no EOS (so greedy runs always reach ``max_tokens``)."""
    from transformers import LlamaConfig, Qwen3Config

    params = dict(TINY_CONFIGS[arch])
    params.update(vocab_size=len(byte_tokenizer()), eos_token_id=None, bos_token_id=None, pad_token_id=None)
    params.update(overrides)
    config = {"qwen3": Qwen3Config, "llama": LlamaConfig}[arch](**params)
    config.architectures = [{"qwen3": "Qwen3ForCausalLM", "llama": "LlamaForCausalLM"}[arch]]
    return config


def save_random_model(path: str | Path, config: Any, seed: int = 0, init_std: float = 0.3, model_cls: Any = None):
    """Write a float32 model with random weights for the transformers ``config`` plus the byte tokenizer to
    ``path``; returns the transformers model (for reference outputs).

    ``model_cls`` defaults to ``AutoModelForCausalLM`` (chosen by ``config.model_type``), so a model plugin
    may name any architecture in ``config.architectures`` and still be compared with a transformers twin:
    the saved ``config.json`` keeps ``config.architectures`` as given.
    ``init_std`` is large on purpose: it makes logits decisive, so greedy comparisons are not decided by
    rounding noise between implementations. Norm weights are drawn around 1.
    """
    import torch
    from transformers import AutoModelForCausalLM

    path = Path(path)
    torch.manual_seed(seed)
    if model_cls is None:
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    else:
        model = model_cls(config).to(torch.float32)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0.0, init_std)
    model.eval()
    architectures = list(config.architectures or [])
    model.save_pretrained(path)
    if architectures:  # save_pretrained writes the transformers class name; keep the one the caller chose
        config_file = path / "config.json"
        saved = json.loads(config_file.read_text())
        saved["architectures"] = architectures
        config_file.write_text(json.dumps(saved, indent=2) + "\n")
    byte_tokenizer().save_pretrained(path)
    return model


def save_tiny_model(path: str | Path, arch: str = "qwen3", seed: int = 0, init_std: float = 0.3, **overrides: Any):
    """Write a random ``arch`` ("qwen3" or "llama") model in float32 plus the byte tokenizer to ``path``;
    returns the transformers model (for reference outputs). ``overrides`` change config fields."""
    return save_random_model(path, tiny_config(arch, **overrides), seed=seed, init_std=init_std)
