"""The grammar-backend extension point: constrained decoding (structured outputs).

A grammar backend compiles a :class:`Constraint` (a JSON Schema, any JSON object, a regular expression, an
EBNF/GBNF grammar or a list of choices) for the model's vocabulary, and makes one :class:`GrammarMatcher` per
request from the compiled grammar. Before each step that samples a constrained request, the core asks its
matcher to fill one row of a token bitmask (which tokens may come next); the sampler masks the logits with
it; the core then hands the sampled token back (:meth:`GrammarMatcher.accept`).

The bitmask is a host ``int32`` tensor ``[rows, bitmask_words(vocab_size)]``: token ``t`` is allowed when
bit ``t % 32`` of word ``t // 32`` is set (the layout xgrammar, llguidance and outlines-core share).

Threads and processes: everything runs in the scheduling process (TP rank 0). The backend is created and
:meth:`GrammarBackend.compile` runs on the core's compile worker thread, off the step loop; the core caches
compiled grammars by constraint (kind and text), so a backend need not. Matchers are used by the step loop
only.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

CONSTRAINT_KINDS = ("json_schema", "json_object", "regex", "grammar", "choice")


@dataclass(frozen=True)
class Constraint:
    """What one request's output must match; equal constraints share one compiled grammar.

    ``spec`` by ``kind``: ``json_schema``: the schema as JSON text; ``json_object``: ``""`` (any JSON object);
    ``regex``: the pattern (the whole output matches it); ``grammar``: EBNF/GBNF text with a ``root`` rule;
    ``choice``: a JSON list of the allowed strings (the output is exactly one of them).
    """

    kind: str
    spec: str

    def __post_init__(self) -> None:
        if self.kind not in CONSTRAINT_KINDS:
            raise ValueError(f"constraint kind must be one of {', '.join(CONSTRAINT_KINDS)}, got {self.kind!r}")

    @property
    def choices(self) -> list[str]:
        """The allowed strings of a ``choice`` constraint."""
        return json.loads(self.spec)


@dataclass(frozen=True)
class GrammarContext:
    """What a grammar-backend factory is told about the model."""

    tokenizer: Any
    """The model's Hugging Face tokenizer (``PreTrainedTokenizerFast``)."""
    vocab_size: int
    """Width of the model's logits (may exceed the tokenizer's length: the extra ids are never allowed)."""
    stop_token_ids: tuple[int, ...]
    """The model's end-of-sequence ids: a matcher allows them exactly where its grammar may end."""
    options: Mapping[str, str] = field(default_factory=dict)
    """The user's ``--grammar-option KEY=VALUE`` flags, unparsed."""


def bitmask_words(vocab_size: int) -> int:
    """Words of one bitmask row."""
    return (vocab_size + 31) // 32


class GrammarMatcher(ABC):
    """The state of one request's output in its grammar. Used by the step loop only (one thread)."""

    @abstractmethod
    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write row ``row`` of the host ``int32`` ``bitmask``: the tokens that may come next. Called before
        every step that samples this request, after the previous token was accepted; an all-zero row is a
        dead end (the core ends the request)."""

    @abstractmethod
    def accept(self, token: int) -> bool:
        """Advance past ``token``; ``False`` (state unchanged) when the grammar does not allow it."""

    @abstractmethod
    def is_terminated(self) -> bool:
        """True once the output is complete: a stop token was accepted, or nothing may follow."""

    @abstractmethod
    def rollback(self, num_tokens: int) -> None:
        """Undo the last ``num_tokens`` accepted tokens (speculative decoding); a backend keeps at least
        :attr:`GrammarBackend.max_rollback_tokens` of history."""


class GrammarBackend(ABC):
    """Compiles constraints for one model's vocabulary and makes matchers."""

    max_rollback_tokens: int = 0
    """How many tokens :meth:`GrammarMatcher.rollback` can undo."""

    @abstractmethod
    def compile(self, constraint: Constraint) -> Any:
        """Compile ``constraint`` (on the core's worker thread); ``ValueError`` with a readable message when
        it is invalid or unsupported. The result is opaque to the core and passed to :meth:`matcher`."""

    @abstractmethod
    def matcher(self, compiled: Any) -> GrammarMatcher:
        """A fresh matcher at the start of ``compiled`` (step loop thread; must be cheap)."""

    def fill_bitmasks(self, matchers: Sequence[GrammarMatcher], bitmask: torch.Tensor, rows: Sequence[int]) -> None:
        """:meth:`GrammarMatcher.fill_bitmask` of ``matchers[i]`` into row ``rows[i]``, for a step's constrained
        requests at once (step loop thread); the default goes one by one, a backend may fill in parallel."""
        for matcher, row in zip(matchers, rows):
            matcher.fill_bitmask(bitmask, row)

    def allocate_bitmask(self, rows: int, vocab_size: int) -> torch.Tensor:
        """A host bitmask of ``rows`` rows, every token allowed."""
        import torch

        return torch.full((rows, bitmask_words(vocab_size)), -1, dtype=torch.int32)
