"""The KV pool: keys and values of every cached token, for every layer, addressed by slot."""

from __future__ import annotations

import torch


class KVPool:
    """One tensor ``[2, layers, slots, kv_heads, head_dim]`` holding K and V.

    A slot is ``page * page_size + offset``; viewing a layer's cache as
    ``[pages, page_size, kv_heads, head_dim]`` (see :meth:`paged`) gives the layout paged-attention kernels
    expect. Page 0 is never handed out: padded (dummy) requests in CUDA graphs write their KV there.
    """

    def __init__(
        self,
        num_layers: int,
        num_pages: int,
        page_size: int,
        num_kv_heads: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.num_layers = num_layers
        self.num_pages = num_pages
        self.page_size = page_size
        self.num_kv_heads = num_kv_heads
        self.head_dim = head_dim
        self.dtype = dtype
        self.device = device
        # zeros, not empty: masked-out positions must never inject NaN/inf garbage into attention
        self.buffer = torch.zeros(
            (2, num_layers, num_pages * page_size, num_kv_heads, head_dim), dtype=dtype, device=device
        )

    @property
    def num_slots(self) -> int:
        return self.num_pages * self.page_size

    @staticmethod
    def bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int, dtype: torch.dtype) -> int:
        return 2 * num_layers * num_kv_heads * head_dim * torch.empty((), dtype=dtype).element_size()

    def k(self, layer: int) -> torch.Tensor:
        """Keys of ``layer``: ``[slots, kv_heads, head_dim]``."""
        return self.buffer[0, layer]

    def v(self, layer: int) -> torch.Tensor:
        """Values of ``layer``: ``[slots, kv_heads, head_dim]``."""
        return self.buffer[1, layer]

    def paged(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        """K and V of ``layer`` as ``[pages, page_size, kv_heads, head_dim]`` views."""
        shape = (self.num_pages, self.page_size, self.num_kv_heads, self.head_dim)
        return self.k(layer).view(shape), self.v(layer).view(shape)

    def store(self, layer: int, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Write the new tokens' ``k``/``v`` (``[tokens, kv_heads, head_dim]``) into ``slots``."""
        self.buffer[0, layer].index_copy_(0, slots, k.to(self.dtype))
        self.buffer[1, layer].index_copy_(0, slots, v.to(self.dtype))
