"""Model configs of every vintage, checkpoint layouts, dummy weights and RoPE scaling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from minisgl_core import LLM, SamplingParams
from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.layers.rotary import rope_inv_freq

SHARED_MODELS = Path(__file__).resolve().parents[1] / "benchmarks" / "models"
GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)


def test_rope_read_from_both_spellings() -> None:
    base = dict(
        architectures=["LlamaForCausalLM"], vocab_size=10, hidden_size=8, intermediate_size=16,
        num_hidden_layers=1, num_attention_heads=2,
    )  # fmt: skip
    scaling = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    hub = ModelConfig.from_dict({**base, "rope_theta": 500000.0, "rope_scaling": {**scaling, "rope_type": "llama3"}})
    v5 = ModelConfig.from_dict({**base, "rope_parameters": {**scaling, "rope_type": "llama3", "rope_theta": 500000.0}})
    old = ModelConfig.from_dict({**base, "rope_theta": 500000.0, "rope_scaling": {**scaling, "type": "llama3"}})
    assert hub.rope_theta == v5.rope_theta == old.rope_theta == 500000.0
    assert hub.rope_scaling == v5.rope_scaling == old.rope_scaling == {**scaling, "rope_type": "llama3"}
    plain = ModelConfig.from_dict({**base, "rope_parameters": {"rope_type": "default", "rope_theta": 1e6}})
    assert plain.rope_theta == 1e6 and plain.rope_scaling is None
    assert ModelConfig.from_dict(base).rope_theta == 10000.0
    assert hub.head_dim == 4 and hub.num_kv_heads == 2


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="benchmark model configs not present")
def test_real_hub_configs_parse() -> None:
    llama = ModelConfig.from_dir(SHARED_MODELS / "llama-3.1-8b-instruct")
    assert llama.rope_scaling and llama.rope_scaling["rope_type"] == "llama3"
    assert llama.eos_token_ids == [128001, 128008, 128009]
    qwen = ModelConfig.from_dir(SHARED_MODELS / "qwen3-0.6b")
    assert qwen.tie_word_embeddings and qwen.head_dim == 128 and qwen.rope_scaling is None


def test_llama3_inv_freq_matches_transformers() -> None:
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": 8192}  # fmt: skip
    if hasattr(LlamaConfig(), "rope_parameters"):  # transformers 5
        config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_parameters={**scaling, "rope_theta": 5e5})
    else:  # transformers 4 (the lowest version allowed, scripts/check-lowest-deps)
        config = LlamaConfig(hidden_size=4096, num_attention_heads=32, rope_scaling=scaling, rope_theta=5e5)
    ref, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    ours = rope_inv_freq(128, 5e5, scaling)
    torch.testing.assert_close(ours, ref.float(), rtol=0, atol=0)


def test_sharded_checkpoint_with_index(tiny_llama, tmp_path: Path) -> None:
    sharded = tmp_path / "sharded"
    tiny_llama.hf_model.save_pretrained(sharded, max_shard_size="100KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_llama.path / name, sharded / name)
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    llm = LLM(str(sharded), device="cpu", attention="torch")
    out = llm.generate([3, 1, 4, 1, 5], GREEDY)[0]
    assert out.token_ids == tiny_llama.greedy([3, 1, 4, 1, 5], 12)


def test_tied_embeddings_share_one_tensor(tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch")
    model = llm.runtime.engine.model
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_missing_weight_is_reported(tiny_qwen3, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(tiny_qwen3.path, broken)
    tensors = load_file(broken / "model.safetensors")
    del tensors["model.layers.0.mlp.up_proj.weight"]
    save_file(tensors, broken / "model.safetensors")
    with pytest.raises(ValueError, match="no weights for: model.layers.0.mlp.gate_up_proj.weight"):
        LLM(str(broken), device="cpu", attention="torch")


def test_dummy_load_format_reads_no_weights(tiny_qwen3, tmp_path: Path) -> None:
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_qwen3.path / name, config_only / name)
    llm = LLM(str(config_only), device="cpu", attention="torch", load_format="dummy")
    outs = llm.generate(["hello", "world"], GREEDY)
    assert all(len(o.token_ids) == 12 for o in outs)
    with pytest.raises(ValueError, match="no complete safetensors checkpoint"):
        LLM(str(config_only), device="cpu", attention="torch")


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="benchmark model configs not present")
def test_dummy_weights_on_a_real_config_shape(tmp_path: Path) -> None:
    """Llama 3.2 1B's real config (llama3 RoPE, tied embeddings, head_dim 64), shrunk to 1 layer."""
    config = json.loads((SHARED_MODELS / "llama-3.2-1b-instruct" / "config.json").read_text())
    config.update(num_hidden_layers=1, vocab_size=512)
    (tmp_path / "config.json").write_text(json.dumps(config))
    from minisgl_core.testing.tiny_models import byte_tokenizer

    byte_tokenizer().save_pretrained(tmp_path)
    llm = LLM(str(tmp_path), device="cpu", attention="torch", load_format="dummy", dtype="float32",
              max_model_len=512, num_kv_tokens=2048)  # fmt: skip
    out = llm.generate([1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True))[0]
    assert len(out.token_ids) == 4


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason="benchmark model configs not present")
@pytest.mark.parametrize("name", ["qwen3-0.6b", "qwen3-14b", "qwen3-32b", "llama-3.1-8b-instruct", "biased-llama"])
def test_dummy_checkpoint_shapes_match_transformers_on_real_configs(name: str) -> None:
    """The decoder's checkpoint_shapes (dummy weights without importing transformers' modeling code) equal
    the names and shapes of transformers' model for the real configs, and a Llama with every bias on."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from minisgl_models.decoder import checkpoint_shapes

    raw = json.loads(
        (SHARED_MODELS / name.replace("biased-llama", "llama-3.2-1b-instruct") / "config.json").read_text()
    )
    if name == "biased-llama":
        raw.update(attention_bias=True, mlp_bias=True, tie_word_embeddings=False, num_hidden_layers=2)
    config = AutoConfig.for_model(**raw)
    with torch.device("meta"):
        want = {n: tuple(p.shape) for n, p in AutoModelForCausalLM.from_config(config).named_parameters()}
    got = checkpoint_shapes(ModelConfig.from_dict(raw), qk_norm=name.startswith("qwen3"))
    assert dict(got) == want and len(got) == len(want)
    assert (name == "biased-llama") == any(n.endswith(".bias") for n in want)
