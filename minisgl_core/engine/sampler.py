"""Batched sampling on the device: greedy, temperature, top-k, top-p, min-p and per-request seeds.

There is no per-request Python loop: the host builds one :class:`SamplingBatch` per step (a few small
tensors) and the sampler runs a fixed sequence of tensor ops. Requests without a seed draw their noise from
one engine-wide generator; requests with a seed draw it from a counter-based hash of
``(seed, output index, token id)``, so their output does not depend on what else is in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from minisgl_core.sampling_params import SamplingParams

_MASK32 = 0xFFFFFFFF


@dataclass
class SamplingBatch:
    """Host-side sampling settings of the requests sampled in one step (one row per request)."""

    temperatures: torch.Tensor  # float32 [S]; 0 means greedy
    top_ks: torch.Tensor  # int64 [S]; <= 0 disables
    top_ps: torch.Tensor  # float32 [S]
    min_ps: torch.Tensor  # float32 [S]
    seeds: torch.Tensor  # int64 [S]; -1 when the request has no seed
    output_index: torch.Tensor  # int64 [S]; how many tokens the request generated before this one
    all_greedy: bool
    needs_filter: bool
    any_seeded: bool

    @classmethod
    def build(cls, params: Sequence[SamplingParams], output_index: Sequence[int]) -> SamplingBatch:
        temps = [p.temperature for p in params]
        top_ks = [p.top_k if p.top_k > 0 else 0 for p in params]
        top_ps = [p.top_p for p in params]
        min_ps = [p.min_p for p in params]
        seeds = [p.seed if p.seed is not None else -1 for p in params]
        sampled = [t > 0 for t in temps]
        return cls(
            temperatures=torch.tensor(temps, dtype=torch.float32),
            top_ks=torch.tensor(top_ks, dtype=torch.int64),
            top_ps=torch.tensor(top_ps, dtype=torch.float32),
            min_ps=torch.tensor(min_ps, dtype=torch.float32),
            seeds=torch.tensor(seeds, dtype=torch.int64),
            output_index=torch.tensor(list(output_index), dtype=torch.int64),
            all_greedy=not any(sampled),
            needs_filter=any(
                s and (k > 0 or p < 1.0 or m > 0.0) for s, k, p, m in zip(sampled, top_ks, top_ps, min_ps)
            ),
            any_seeded=any(s and seed >= 0 for s, seed in zip(sampled, seeds)),
        )

    def to(self, device: torch.device) -> SamplingBatch:
        move = lambda t: t.to(device, non_blocking=True)
        return SamplingBatch(
            move(self.temperatures), move(self.top_ks), move(self.top_ps), move(self.min_ps),
            move(self.seeds), move(self.output_index), self.all_greedy, self.needs_filter, self.any_seeded,
        )  # fmt: skip


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (values kept in [0, 2^32) inside int64, so no overflow)."""
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _MASK32
    x = ((x ^ (x >> 16)) * 0x45D9F3B) & _MASK32
    return x ^ (x >> 16)


def seeded_uniform(seeds: torch.Tensor, output_index: torch.Tensor, vocab: int) -> torch.Tensor:
    """Uniform noise in (0, 1), ``[len(seeds), vocab]``, a pure function of (seed, output index, token)."""
    key = _hash32((seeds & _MASK32) ^ _hash32((seeds >> 32) & _MASK32))
    key = _hash32(key ^ _hash32(output_index & _MASK32))
    token = torch.arange(vocab, device=seeds.device, dtype=torch.int64)
    bits = _hash32((token[None, :] * 0x9E3779B1 + key[:, None]) & _MASK32)
    return ((bits >> 8).float() + 0.5) * (1.0 / (1 << 24))


class Sampler:
    """Turns logits into next tokens for one step."""

    def __init__(self, device: torch.device, seed: int) -> None:
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def sample(self, logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        """``logits`` ``[S, vocab]`` -> next token ids ``[S]`` (int64, on the logits' device)."""
        logits = logits.float()
        greedy_tokens = logits.argmax(dim=-1)
        if batch.all_greedy:
            return greedy_tokens
        greedy = batch.temperatures <= 0
        temps = torch.where(greedy, torch.ones_like(batch.temperatures), batch.temperatures)
        probs = (logits / temps[:, None]).softmax(dim=-1)
        if batch.needs_filter:
            probs = self._filter(probs, batch)
        noise = torch.empty_like(probs).exponential_(generator=self.generator)
        if batch.any_seeded:
            seeded = batch.seeds >= 0
            uniform = seeded_uniform(batch.seeds, batch.output_index, probs.shape[-1])
            noise = torch.where(seeded[:, None], -torch.log(uniform), noise)
        sampled = (probs / noise).argmax(dim=-1)
        return torch.where(greedy, greedy_tokens, sampled)

    @staticmethod
    def _filter(probs: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        """Zero the probabilities outside each row's top-k / top-p / min-p set (renormalising is not
        needed: sampling by exponential race is scale-invariant)."""
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        rank = torch.arange(probs.shape[-1], device=probs.device)[None, :]
        top_k = torch.where(batch.top_ks > 0, batch.top_ks, probs.shape[-1])
        drop = rank >= top_k[:, None]
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly before each token
        drop |= (before >= batch.top_ps[:, None]) & (batch.top_ps < 1.0)[:, None]
        drop |= sorted_probs < (batch.min_ps * sorted_probs[:, 0])[:, None]
        drop[:, 0] = False  # the most likely token always survives
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
