"""The ``torch`` attention backend: plain PyTorch over the paged KV cache, on any device.

It is the reference implementation: simple enough to check by eye, and what every other backend's
conformance tests compare against. Decode steps run batched (keys gathered into a padded
``[batch, max_len]`` block); prefill steps run one request at a time with a causal mask offset by the
cached prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from minisgl_core.contracts.attention import AttentionBackend, AttentionContext
from minisgl_core.contracts.batch import AttentionLayerSpec, ForwardBatch, Phase
from minisgl_core.contracts.options import reject_options


class TorchAttention(AttentionBackend):
    def __init__(self, ctx: AttentionContext) -> None:
        self.ctx = ctx
        self.pool = ctx.kv_pool
        self._decode_slots: torch.Tensor | None = None
        self._decode_mask: torch.Tensor | None = None

    def prepare(self, batch: ForwardBatch) -> None:
        if batch.phase is Phase.DECODE:
            max_len = batch.max_kv_len
            table = batch.page_table[batch.rows, :max_len].to(torch.int64)
            arange = torch.arange(max_len, device=table.device)
            mask = arange[None, :] < batch.kv_lens[:, None]
            self._decode_slots = table.masked_fill(~mask, 0)
            self._decode_mask = mask

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layer: AttentionLayerSpec, batch: ForwardBatch
    ) -> torch.Tensor:
        k_cache, v_cache = self.pool.k(layer.layer_id), self.pool.v(layer.layer_id)
        if batch.phase is Phase.DECODE:
            out = self._decode(q, k_cache, v_cache, layer)
        else:
            out = self._prefill(q, k_cache, v_cache, layer, batch)
        return out.reshape(q.shape[0], -1)

    def _decode(
        self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, layer: AttentionLayerSpec
    ) -> torch.Tensor:
        assert self._decode_slots is not None and self._decode_mask is not None
        bsz, heads, dim = q.shape
        kv_heads = layer.num_kv_heads
        keys = k_cache[self._decode_slots].to(q.dtype)  # [B, L, Hkv, D]
        values = v_cache[self._decode_slots].to(q.dtype)
        qg = q.view(bsz, kv_heads, heads // kv_heads, dim)
        scores = torch.einsum("bhgd,blhd->bhgl", qg.float(), keys.float()) * layer.scale
        scores = scores.masked_fill(~self._decode_mask[:, None, None, :], float("-inf"))
        probs = scores.softmax(dim=-1)
        out = torch.einsum("bhgl,blhd->bhgd", probs, values.float())
        return out.to(q.dtype).reshape(bsz, heads, dim)

    def _prefill(
        self,
        q: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        layer: AttentionLayerSpec,
        batch: ForwardBatch,
    ) -> torch.Tensor:
        out = torch.empty_like(q)
        start = 0
        rows = batch.rows.tolist()
        for i, (q_len, kv_len) in enumerate(zip(batch.q_lens_host, batch.kv_lens_host)):
            slots = batch.page_table[rows[i], :kv_len].to(torch.int64)
            qi = q[start : start + q_len].transpose(0, 1)  # [H, q, D]
            ki = k_cache[slots].to(q.dtype).transpose(0, 1)  # [Hkv, kv, D]
            vi = v_cache[slots].to(q.dtype).transpose(0, 1)
            # query j sits at position kv_len - q_len + j and may see keys at positions <= its own
            q_pos = torch.arange(kv_len - q_len, kv_len, device=q.device)
            mask = torch.arange(kv_len, device=q.device)[None, :] <= q_pos[:, None]
            oi = F.scaled_dot_product_attention(
                qi,
                ki,
                vi,
                attn_mask=mask,
                scale=layer.scale,
                enable_gqa=layer.num_kv_heads != layer.num_heads,
            )
            out[start : start + q_len] = oi.transpose(0, 1)
            start += q_len
        return out


def create(ctx: AttentionContext) -> TorchAttention:
    """Factory registered as the ``torch`` attention backend."""
    reject_options(ctx.options, "the torch attention backend")
    return TorchAttention(ctx)
