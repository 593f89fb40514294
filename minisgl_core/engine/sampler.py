"""Batched sampling on the device: logit bias, penalties, greedy, temperature, top-k, top-p, min-p, seeds,
logprobs.

There is no per-request Python loop: the host packs one :class:`SamplingBatch` per step (two small tensors
moved in two copies) and the sampler runs a fixed sequence of tensor ops, skipping the stages no request in
the batch needs. Requests without a seed draw their noise from one engine-wide generator; requests with a
seed draw it from a counter-based hash of ``(seed, output index, token id)``, so their output does not
depend on what else is in the batch.
"""

from __future__ import annotations

import functools
import operator
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from minisgl_core.contracts.sampling import BIASED, FILTERED, LOGPROBS, PENALIZED, SAMPLED, SEEDED, SamplingParams
from minisgl_core.engine.prompt_logprobs import PromptLogprobs
from minisgl_core.kernels import ops, use_triton

_MASK32 = 0xFFFFFFFF
# columns of SamplingBatch.floats / SamplingBatch.ints
_TEMP, _TOP_P, _MIN_P, _PRESENCE, _FREQUENCY, _REPETITION = range(6)
_TOP_K, _SEED, _OUTPUT_INDEX, _ROW = range(4)


@dataclass
class SamplingBatch:
    """Sampling settings of the requests sampled in one step (one row per request), packed."""

    floats: torch.Tensor  # float32 [S, 6]: temperature, top_p, min_p, presence, frequency, repetition
    ints: torch.Tensor  # int64 [S, 4]: top_k (0 = off), seed (-1 = none), output index, page-table row
    all_greedy: bool
    needs_filter: bool
    any_seeded: bool
    any_penalty: bool
    logprobs: int
    """Most top alternatives any row asked for; -1 when no row wants logprobs."""
    any_bias: bool = False
    """Some row has ``logit_bias`` or ``min_tokens``: the scheduler then fills :attr:`bias` (``add_bias``)."""
    bias: torch.Tensor | None = None
    """float32 ``[B, 3]``: ``(batch row, token id, value)`` added to the logits (``-inf`` bans); None = none."""
    mask: torch.Tensor | None = None
    """int32 ``[S, ceil(vocab / 32)]`` token bitmask of a step with constrained requests (bit ``t % 32`` of word
    ``t // 32`` set: token ``t`` allowed); None = no constraint in the batch (no mask kernel runs)."""

    @classmethod
    def build(
        cls, params: Sequence[SamplingParams], output_index: Sequence[int], rows: Sequence[int] | None = None
    ) -> SamplingBatch:
        n = len(params)
        packed = [p.packed for p in params]
        floats = np.array([f for f, _ in packed], dtype=np.float32).reshape(n, 6)
        ints = np.empty((n, 4), dtype=np.int64)
        ints[:, :2] = np.array([k_seed for _, k_seed in packed], dtype=np.int64).reshape(n, 2)
        ints[:, 2] = output_index
        ints[:, 3] = rows if rows is not None else 0
        flags = functools.reduce(operator.or_, [p.sampler_flags for p in params], 0)
        logprobs = -1
        if flags & LOGPROBS:
            logprobs = max(p.logprobs for p in params if p.logprobs is not None)
        return cls(
            floats=torch.from_numpy(floats),
            ints=torch.from_numpy(ints),
            all_greedy=not flags & SAMPLED,
            needs_filter=bool(flags & FILTERED),
            any_seeded=bool(flags & SEEDED),
            any_penalty=bool(flags & PENALIZED),
            logprobs=logprobs,
            any_bias=bool(flags & BIASED),
        )

    def add_bias(
        self, params: Sequence[SamplingParams], output_index: Sequence[int], stop_ids: Sequence[frozenset[int]]
    ) -> None:
        """Fill :attr:`bias` from each row's ``logit_bias``, and ban its ``stop_ids`` while its output index is
        below ``min_tokens``. Called only when :attr:`any_bias` (nothing is built for other batches)."""
        entries: list[tuple[float, float, float]] = []
        for i, (p, index, stops) in enumerate(zip(params, output_index, stop_ids)):
            if p.logit_bias:
                entries.extend((i, token, value) for token, value in p.logit_bias.items())
            if index < p.min_tokens:
                entries.extend((i, token, float("-inf")) for token in stops)
        self.bias = torch.tensor(entries, dtype=torch.float32).reshape(-1, 3) if entries else None

    def to(self, device: torch.device) -> SamplingBatch:
        if device.type == "cpu":
            return self
        move = lambda t: t.pin_memory().to(device, non_blocking=True)
        return SamplingBatch(
            move(self.floats), move(self.ints), self.all_greedy, self.needs_filter, self.any_seeded,
            self.any_penalty, self.logprobs, self.any_bias, None if self.bias is None else move(self.bias),
            None if self.mask is None else move(self.mask),
        )  # fmt: skip

    def col(self, index: int) -> torch.Tensor:
        return self.floats[:, index]

    def icol(self, index: int) -> torch.Tensor:
        return self.ints[:, index]


@dataclass
class SampleResult:
    """Tokens of one step, and (when asked) their logprobs and the top alternatives."""

    tokens: torch.Tensor  # int64 [S]
    logprobs: torch.Tensor | None = None  # float32 [S]
    top_ids: torch.Tensor | None = None  # int64 [S, K]
    top_logprobs: torch.Tensor | None = None  # float32 [S, K]
    prompt: PromptLogprobs | None = None
    """Logprobs of prompt tokens scored in this step (``StepPlan.prompt_logprobs``)."""


def apply_bitmask(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``logits`` with every token the int32 bitmask ``mask`` does not allow set to ``-inf`` (out of place)."""
    bits = 1 << torch.arange(32, device=mask.device, dtype=torch.int32)  # bit 31: the sign bit, still one bit
    banned = (mask.unsqueeze(-1) & bits).flatten(1)[:, : logits.shape[-1]] == 0  # one word-sized pass, then bools
    return logits.masked_fill(banned, float("-inf"))


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


class PenaltyState:
    """Per-request-row token statistics on the device for presence/frequency/repetition penalties.

    Allocated on first use: ``counts[row, token]`` counts generated tokens, ``seen[row, token]`` marks
    tokens of the prompt.
    """

    def __init__(self, num_rows: int, vocab: int, device: torch.device) -> None:
        self.counts = torch.zeros((num_rows, vocab), dtype=torch.int32, device=device)
        self.in_prompt = torch.zeros((num_rows, vocab), dtype=torch.bool, device=device)

    def reset(self, row: int, prompt_ids: torch.Tensor, output_ids: torch.Tensor) -> None:
        """Start ``row`` over for a request with these prompt and output tokens (device tensors)."""
        self.counts[row].zero_()
        self.counts[row].index_add_(0, output_ids, torch.ones_like(output_ids, dtype=torch.int32))
        self.in_prompt[row].zero_()
        self.in_prompt[row, prompt_ids] = True

    def record(self, rows: torch.Tensor, tokens: torch.Tensor) -> None:
        self.counts.index_put_((rows, tokens), torch.ones_like(tokens, dtype=torch.int32), accumulate=True)

    def apply(self, logits: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        rows = batch.icol(_ROW)
        counts = self.counts[rows]
        seen = (counts > 0) | self.in_prompt[rows]
        rep = batch.col(_REPETITION)[:, None]
        logits = torch.where(seen, torch.where(logits > 0, logits / rep, logits * rep), logits)
        logits = logits - batch.col(_FREQUENCY)[:, None] * counts
        return logits - batch.col(_PRESENCE)[:, None] * (counts > 0)


class Sampler:
    """Turns logits into next tokens for one step."""

    def __init__(self, device: torch.device, seed: int) -> None:
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.host_rng = random.Random(seed)
        self.penalties: PenaltyState | None = None

    def sample(self, logits: torch.Tensor, batch: SamplingBatch) -> SampleResult:
        """``logits`` ``[S, vocab]`` -> next token ids ``[S]`` (int64, on the logits' device). Logprobs are
        those of the model's distribution, before bias and penalties."""
        raw = logits
        if batch.bias is not None:  # out of place: the logits may be a CUDA graph's output buffer
            bias = batch.bias
            logits = logits.float().index_put((bias[:, 0].long(), bias[:, 1].long()), bias[:, 2], accumulate=True)
        if batch.mask is not None:
            logits = apply_bitmask(logits, batch.mask)
        simple = not (batch.needs_filter or batch.any_seeded or batch.any_penalty) and batch.logprobs < 0
        if simple and use_triton(logits):  # one fused pass: temperature + Gumbel-max (or argmax)
            seed = self.host_rng.randrange(1 << 31)
            return SampleResult(ops().sample_gumbel(logits, batch.col(_TEMP).contiguous(), seed))
        logits = logits.float()
        if batch.any_penalty and self.penalties is not None:
            logits = self.penalties.apply(logits, batch)
        tokens = logits.argmax(dim=-1)
        if not batch.all_greedy:
            tokens = self._sample(logits, tokens, batch)
        result = SampleResult(tokens)
        if batch.logprobs >= 0:
            logprobs = raw.float().log_softmax(dim=-1)
            result.logprobs = logprobs.gather(1, tokens[:, None])[:, 0]
            if batch.logprobs > 0:
                result.top_logprobs, result.top_ids = logprobs.topk(batch.logprobs, dim=-1)
        return result

    def _sample(self, logits: torch.Tensor, greedy_tokens: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        temperature = batch.col(_TEMP)
        greedy = temperature <= 0
        temps = torch.where(greedy, torch.ones_like(temperature), temperature)
        probs = (logits / temps[:, None]).softmax(dim=-1)
        if batch.needs_filter:
            probs = self._filter(probs, batch)
        noise = torch.empty_like(probs).exponential_(generator=self.generator)
        if batch.any_seeded:
            seeds = batch.icol(_SEED)
            uniform = seeded_uniform(seeds, batch.icol(_OUTPUT_INDEX), probs.shape[-1])
            noise = torch.where((seeds >= 0)[:, None], -torch.log(uniform), noise)
        sampled = (probs / noise).argmax(dim=-1)
        return torch.where(greedy, greedy_tokens, sampled)

    @staticmethod
    def _filter(probs: torch.Tensor, batch: SamplingBatch) -> torch.Tensor:
        """Zero the probabilities outside each row's top-k / top-p / min-p set (renormalising is not
        needed: sampling by exponential race is scale-invariant)."""
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        rank = torch.arange(probs.shape[-1], device=probs.device)[None, :]
        top_ks = batch.icol(_TOP_K)
        top_k = torch.where(top_ks > 0, top_ks, probs.shape[-1])
        drop = rank >= top_k[:, None]
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass strictly before each token
        top_p = batch.col(_TOP_P)
        drop |= (before >= top_p[:, None]) & (top_p < 1.0)[:, None]
        drop |= sorted_probs < (batch.col(_MIN_P) * sorted_probs[:, 0])[:, None]
        drop[:, 0] = False  # the most likely token always survives
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        return torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
