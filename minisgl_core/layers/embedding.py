"""Token embedding and LM head, with the vocabulary split across tensor-parallel ranks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minisgl_core.parallel import all_gather_last_dim, all_reduce, get_tp


class VocabParallelEmbedding(nn.Module):
    """Embedding whose rows are split evenly across ranks (the last shard padded); looked-up vectors are
    summed over ranks, each rank contributing the ids it owns."""

    def __init__(self, vocab_size: int, hidden_size: int) -> None:
        super().__init__()
        tp = get_tp()
        self.vocab_size = vocab_size
        self.shard_size = -(-vocab_size // tp.size)
        self.start = tp.rank * self.shard_size
        self.weight = nn.Parameter(torch.empty(self.shard_size, hidden_size), requires_grad=False)
        self.weight.weight_loader = self._load  # type: ignore[attr-defined]

    def _load(self, param: torch.Tensor, loaded: torch.Tensor, shard_id: object = None) -> None:
        if loaded.shape[0] != self.vocab_size:
            raise ValueError(f"embedding has {loaded.shape[0]} rows, expected vocab size {self.vocab_size}")
        end = min(self.start + self.shard_size, self.vocab_size)
        param.data.zero_()
        param.data[: end - self.start].copy_(loaded[self.start : end])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        if get_tp().size == 1:
            return F.embedding(input_ids, self.weight)
        local = input_ids - self.start
        mask = (local < 0) | (local >= self.shard_size)
        out = F.embedding(local.masked_fill(mask, 0), self.weight)
        out.masked_fill_(mask.unsqueeze(-1), 0)
        return all_reduce(out)


class ParallelLMHead(VocabParallelEmbedding):
    """Projects hidden states to vocabulary logits; each rank computes its slice, then they are gathered.

    With tied embeddings, pass the embedding to :meth:`tie` and the head reuses its weight.
    """

    def tie(self, embedding: VocabParallelEmbedding) -> None:
        self.weight = embedding.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        logits = F.linear(hidden, self.weight)
        if get_tp().size > 1:
            logits = all_gather_last_dim(logits)
        return logits[..., : self.vocab_size]
