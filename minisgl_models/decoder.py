"""A Llama-family decoder (pre-norm, RoPE, grouped-query attention, SwiGLU MLP) built only from the core's
public layers. Qwen3 is this decoder with per-head RMSNorm on queries and keys."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from minisgl_core.checkpoint import load_by_name
from minisgl_core.contracts import CausalLM, ForwardBatch, ModelConfig, ModelContext
from minisgl_core.layers import (
    AttentionLayer,
    MergedColumnParallelLinear,
    ParallelLMHead,
    QKVParallelLinear,
    RMSNorm,
    RotaryEmbedding,
    RowParallelLinear,
    SiluAndMul,
    VocabParallelEmbedding,
)

STACKED_WEIGHTS = {
    ".q_proj.": (".qkv_proj.", "q"),
    ".k_proj.": (".qkv_proj.", "k"),
    ".v_proj.": (".qkv_proj.", "v"),
    ".gate_proj.": (".gate_up_proj.", 0),
    ".up_proj.": (".gate_up_proj.", 1),
}


def checkpoint_shapes(cfg: ModelConfig, qk_norm: bool) -> list[tuple[str, tuple[int, ...]]]:
    """The Hugging Face checkpoint of a Llama-family decoder (``qk_norm``: Qwen3's): names and full shapes."""
    h, d, inter = cfg.hidden_size, cfg.head_dim, cfg.intermediate_size
    mlp_bias = bool(cfg.raw.get("mlp_bias", False))
    projections = [  # (module, output features, input features, has a bias)
        ("self_attn.q_proj", cfg.num_heads * d, h, cfg.attention_bias),
        ("self_attn.k_proj", cfg.num_kv_heads * d, h, cfg.attention_bias),
        ("self_attn.v_proj", cfg.num_kv_heads * d, h, cfg.attention_bias),
        ("self_attn.o_proj", h, cfg.num_heads * d, cfg.attention_bias),
        ("mlp.gate_proj", inter, h, mlp_bias),
        ("mlp.up_proj", inter, h, mlp_bias),
        ("mlp.down_proj", h, inter, mlp_bias),
    ]
    norms = [("input_layernorm", h), ("post_attention_layernorm", h)]
    if qk_norm:
        norms += [("self_attn.q_norm", d), ("self_attn.k_norm", d)]
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (cfg.vocab_size, h))]
    for i in range(cfg.num_layers):
        prefix = f"model.layers.{i}."
        shapes += [(f"{prefix}{name}.weight", (size,)) for name, size in norms]
        for name, out_features, in_features, bias in projections:
            shapes.append((f"{prefix}{name}.weight", (out_features, in_features)))
            if bias:
                shapes.append((f"{prefix}{name}.bias", (out_features,)))
    shapes.append(("model.norm.weight", (h,)))
    if not cfg.tie_word_embeddings:
        shapes.append(("lm_head.weight", (cfg.vocab_size, h)))
    return shapes


class DecoderAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_id: int, rotary: RotaryEmbedding, qk_norm: bool) -> None:
        super().__init__()
        self.head_dim = cfg.head_dim
        self.qkv_proj = QKVParallelLinear(
            cfg.hidden_size, cfg.head_dim, cfg.num_heads, cfg.num_kv_heads, bias=cfg.attention_bias
        )
        self.o_proj = RowParallelLinear(cfg.num_heads * cfg.head_dim, cfg.hidden_size, bias=cfg.attention_bias)
        self.q_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if qk_norm else None
        self.k_norm = RMSNorm(cfg.head_dim, cfg.rms_norm_eps) if qk_norm else None
        self.rotary = [rotary]  # shared by all layers; a list keeps it out of this module's children
        self.attn = AttentionLayer(layer_id, self.qkv_proj.num_heads, self.qkv_proj.num_kv_heads, cfg.head_dim)

    def forward(self, positions: torch.Tensor, hidden: torch.Tensor, batch: ForwardBatch) -> torch.Tensor:
        q, k, v = self.qkv_proj.split(self.qkv_proj(hidden))
        q = q.view(q.shape[0], -1, self.head_dim)
        k = k.view(k.shape[0], -1, self.head_dim)
        v = v.view(v.shape[0], -1, self.head_dim)
        # the layer normalises and rotates q/k at batch.positions and stores k/v: one fused kernel on the GPU
        return self.o_proj(self.attn(q, k, v, batch, rope=self.rotary[0], q_norm=self.q_norm, k_norm=self.k_norm))


class DecoderMLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.hidden_act != "silu":
            raise ValueError(f"unsupported hidden_act {cfg.hidden_act!r} (only silu)")
        bias = bool(cfg.raw.get("mlp_bias", False))
        size = cfg.intermediate_size
        self.gate_up_proj = MergedColumnParallelLinear(cfg.hidden_size, [size, size], bias=bias)
        self.down_proj = RowParallelLinear(size, cfg.hidden_size, bias=bias)
        self.act = SiluAndMul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act(self.gate_up_proj(x)))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, layer_id: int, rotary: RotaryEmbedding, qk_norm: bool) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = DecoderAttention(cfg, layer_id, rotary, qk_norm)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = DecoderMLP(cfg)

    def forward(
        self,
        positions: torch.Tensor,
        hidden: torch.Tensor,
        residual: torch.Tensor | None,
        batch: ForwardBatch,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if residual is None:
            residual = hidden
            hidden = self.input_layernorm(hidden)
        else:
            hidden, residual = self.input_layernorm(hidden, residual)
        hidden = self.self_attn(positions, hidden, batch)
        hidden, residual = self.post_attention_layernorm(hidden, residual)
        return self.mlp(hidden), residual


class DecoderModel(nn.Module):
    def __init__(self, cfg: ModelConfig, max_positions: int, qk_norm: bool) -> None:
        super().__init__()
        self.embed_tokens = VocabParallelEmbedding(cfg.vocab_size, cfg.hidden_size)
        self.rotary = RotaryEmbedding(cfg.head_dim, max_positions, cfg.rope_theta, cfg.rope_scaling)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, self.rotary, qk_norm) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        hidden = self.embed_tokens(batch.input_ids)
        residual = None
        for layer in self.layers:
            hidden, residual = layer(batch.positions, hidden, residual, batch)
        hidden, _ = self.norm(hidden, residual)
        return hidden


class DecoderForCausalLM(CausalLM):
    """Llama-family causal LM; ``qk_norm`` switches on Qwen3's per-head query/key normalisation."""

    def __init__(self, ctx: ModelContext, qk_norm: bool) -> None:
        super().__init__()
        cfg = ctx.config
        self.config = cfg
        self.qk_norm = qk_norm
        self.model = DecoderModel(cfg, ctx.max_model_len, qk_norm)
        self.lm_head = ParallelLMHead(cfg.vocab_size, cfg.hidden_size)
        if cfg.tie_word_embeddings:
            self.lm_head.tie(self.model.embed_tokens)

    def forward(self, batch: ForwardBatch) -> torch.Tensor:
        hidden = self.model(batch)
        return self.lm_head(hidden[batch.sample_indices])

    def checkpoint_shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        return checkpoint_shapes(self.config, self.qk_norm)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> None:
        skip = ["rotary_emb.inv_freq"] + (["lm_head.weight"] if self.config.tie_word_embeddings else [])
        load_by_name(self, weights, STACKED_WEIGHTS, skip=skip)
