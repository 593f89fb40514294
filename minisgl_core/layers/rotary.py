"""Rotary position embedding (the rotate-half form used by Llama and Qwen), with Llama 3 and linear scaling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from minisgl_core.kernels import ops, rope_kernel_fits, use_triton
from minisgl_core.layers.norm import RMSNorm


def rope_inv_freq(head_dim: int, theta: float, scaling: dict[str, Any] | None) -> torch.Tensor:
    """Inverse frequencies (float32, ``head_dim // 2`` values) after applying ``scaling``."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
    inv_freq = 1.0 / (theta**exponents)
    rope_type = (scaling or {}).get("rope_type", "default")
    if rope_type == "default":
        return inv_freq
    if rope_type == "linear":
        return inv_freq / float(scaling["factor"])  # type: ignore[index]
    if rope_type == "llama3":
        return _llama3_inv_freq(inv_freq, scaling)  # type: ignore[arg-type]
    raise ValueError(f"unsupported rope scaling type {rope_type!r} (supported: default, linear, llama3)")


def _llama3_inv_freq(inv_freq: torch.Tensor, scaling: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1 frequency scaling: long wavelengths are divided by ``factor``, short ones kept, and the
    band in between interpolated smoothly."""
    factor = float(scaling["factor"])
    low = float(scaling.get("low_freq_factor", 1.0))
    high = float(scaling.get("high_freq_factor", 4.0))
    original = float(scaling.get("original_max_position_embeddings", 8192))
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > original / low, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low) / (high - low)
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    in_band = ~(wavelen < original / high) & ~(wavelen > original / low)
    return torch.where(in_band, blended, scaled)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RotaryEmbedding(nn.Module):
    """Applies RoPE to q and k of shape ``[tokens, heads, head_dim]`` at the given positions.

    cos/sin are precomputed in float32 for ``max_positions`` positions and cast to the activations' dtype.
    """

    def __init__(self, head_dim: int, max_positions: int, theta: float, scaling: dict[str, Any] | None) -> None:
        super().__init__()
        inv_freq = rope_inv_freq(head_dim, theta, scaling)
        positions = torch.arange(max_positions, dtype=torch.int64).float()
        freqs = positions[:, None] * inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos(), persistent=False)
        self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(
        self,
        positions: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        q_norm: RMSNorm | None = None,
        k_norm: RMSNorm | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE of ``q`` and ``k``; with ``q_norm``/``k_norm``, each head is RMS-normalised first (Qwen3).
        On the GPU the norm and the rotation are one fused kernel per tensor."""
        if use_triton(q) and q.stride(-1) == 1 and k.stride(-1) == 1 and rope_kernel_fits(q.shape[-1]):
            fused = ops().norm_rope
            q = fused(q, positions, self.cos, self.sin, *_norm_args(q_norm))
            k = fused(k, positions, self.cos, self.sin, *_norm_args(k_norm))
            return q, k
        if q_norm is not None and k_norm is not None:
            q, k = q_norm(q), k_norm(k)
        cos = self.cos[positions].unsqueeze(1)
        sin = self.sin[positions].unsqueeze(1)
        cos_q, sin_q = cos.to(q.dtype), sin.to(q.dtype)
        q = q * cos_q + _rotate_half(q) * sin_q
        k = k * cos_q + _rotate_half(k) * sin_q
        return q, k


def _norm_args(norm: RMSNorm | None) -> tuple[torch.Tensor | None, float]:
    return (norm.weight, norm.eps) if norm is not None else (None, 1e-6)
