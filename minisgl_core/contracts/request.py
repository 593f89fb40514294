"""A request's life inside the scheduler: its tokens, where its KV lives, how far it has got."""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from minisgl_core.contracts.sampling import SamplingParams


@dataclass(frozen=True)
class TokenLogprob:
    """Log-probability of a sampled token (under the model's raw distribution) and the top alternatives."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]]
    """``(token_id, logprob)`` of the ``SamplingParams.logprobs`` most likely tokens, most likely first."""
    rank: int = 0
    """1 + the number of tokens more likely than this one (prompt tokens; 0: not computed)."""


class FinishReason(str, Enum):
    STOP = "stop"
    LENGTH = "length"
    ABORT = "abort"
    GRAMMAR = "grammar_dead_end"
    """The output so far cannot be continued within its structured-output constraint."""


@dataclass(eq=False)
class Req:
    """One request. Lengths count tokens from the start of the prompt.

    Positions ``[0, kv_len)`` have KV computed (or being computed by a step in flight); the first
    ``cached_len`` of them are shared from the prefix cache. The request is in prefill while
    ``kv_len < fill_len``: ``fill_len`` is the prompt length, or prompt + output so far after a retraction.
    """

    rid: int
    prompt_ids: list[int]
    params: SamplingParams
    max_new_tokens: int
    """``params.max_tokens`` capped so that prompt + output fits in the model's context."""
    eos_ids: frozenset[int]
    arrival: int
    """Submission order: a sequence number per engine process, lower is earlier (not a time)."""
    arrival_time: float = 0.0
    """When the request was submitted, in seconds on the scheduler's clock (``SchedulerView.now``)."""
    admit_time: float = 0.0
    """When the request was first admitted (left the waiting queue), on the same clock."""
    output_ids: list[int] = field(default_factory=list)
    row: int | None = None
    kv_len: int = 0
    fill_len: int = 0
    cached_len: int = 0
    cache_handle: Any = None
    num_sampled: int = 0
    """Sampling steps scheduled so far, including one in flight."""
    num_cached_tokens: int = 0
    """Prompt tokens served from the prefix cache at first admission (for stats)."""
    num_retractions: int = 0
    finish_reason: FinishReason | None = None
    grammar: Any = None
    """The request's :class:`minisgl_core.contracts.GrammarMatcher` once its constraint compiled (else None)."""
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)
    """Prompt tokens 1.. scored so far (``params.prompt_logprobs``; token 0 has nothing before it)."""
    user_data: Any = None
    """Free slot for whoever submitted the request (the offline API, the server)."""

    def __post_init__(self) -> None:
        self.fill_len = self.fill_len or len(self.prompt_ids)
        stop = frozenset(self.params.stop_token_ids)
        self._stop_ids = stop if self.params.ignore_eos else stop | self.eos_ids

    @property
    def stop_ids(self) -> frozenset[int]:
        """Token ids that end this request (EOS unless ``ignore_eos``, plus ``stop_token_ids``)."""
        return self._stop_ids

    @property
    def all_ids(self) -> list[int]:
        return self.prompt_ids + self.output_ids

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    @property
    def in_prefill(self) -> bool:
        return self.kv_len < self.fill_len

    @property
    def can_sample(self) -> bool:
        """True while another token may be scheduled (not finished, below ``max_new_tokens``)."""
        return not self.finished and self.num_sampled < self.max_new_tokens

    @property
    def decodable(self) -> bool:
        """True when the next decode step should compute a token for this request: its prompt is computed,
        and it :attr:`can_sample` (written out: the scheduler asks this of every running request per step)."""
        return self.kv_len >= self.fill_len and self.finish_reason is None and self.num_sampled < self.max_new_tokens

    @property
    def remaining_new_tokens(self) -> int:
        return max(self.max_new_tokens - self.num_sampled, 0)

    def check_stop(self, token: int) -> FinishReason | None:
        """The finish reason after ``token`` was appended to the output, if any."""
        if token in self._stop_ids:
            return FinishReason.STOP
        if len(self.output_ids) >= self.max_new_tokens:
            return FinishReason.LENGTH
        return None


def checked_token_ids(ids: Sequence[int], vocab_size: int) -> list[int]:
    """``ids`` as a new list of Python ints; ``ValueError`` unless each is an integer in ``[0, vocab_size)``.
    Vectorised: prompts are long and this runs before a batch's first step."""
    try:
        packed = array.array("q", ids)  # accepts exactly the values with __index__ that fit in int64
    except (TypeError, OverflowError):
        packed = None
    view = np.frombuffer(packed, dtype=np.int64) if packed else None
    if view is None or view.min() < 0 or view.max() >= vocab_size:
        raise ValueError(f"prompt token ids must be integers in [0, {vocab_size})")
    return packed.tolist()
