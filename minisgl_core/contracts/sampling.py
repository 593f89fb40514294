"""How to pick the next tokens of one request, and when to stop."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from minisgl_core.contracts.grammar import Constraint
from minisgl_core.contracts.settings import setting

SAMPLED, FILTERED, SEEDED, PENALIZED, LOGPROBS, BIASED = 1, 2, 4, 8, 16, 32
"""Bits of :attr:`SamplingParams.sampler_flags`."""


@dataclass
class SamplingParams:
    """Sampling and stopping settings of one request (the OpenAI / vLLM meanings).

    ``temperature == 0`` is greedy decoding. ``top_k <= 0`` and ``top_p == 1`` and ``min_p == 0`` disable
    those filters. ``seed`` makes a sampled request reproducible whatever else runs in the same batch.
    Generation stops after ``max_tokens`` new tokens, at an end-of-sequence token of the model (unless
    ``ignore_eos``), at any of ``stop_token_ids``, when the text contains one of ``stop`` (the stop string is
    not part of the returned text) or a match of one of ``stop_regex`` (the match is kept). ``logit_bias`` adds
    a value in ``[-100, 100]`` to the logits of the given token ids before sampling (+100 all but forces a
    token, -100 all but bans it); ``min_tokens`` bans the end-of-sequence and ``stop_token_ids`` tokens until
    that many tokens were generated, and stop strings and patterns are not looked for in their text.
    At most one of ``json_schema`` (a dict or JSON text; ``{"type": "object"}`` alone means any JSON
    object), ``regex``, ``grammar`` (EBNF/GBNF) and ``choice`` constrains the output (structured outputs,
    :attr:`constraint`).
    """

    temperature: float = setting(1.0, "sampling temperature (0 = greedy)")
    top_p: float = setting(1.0, "nucleus sampling: keep the most likely tokens up to this probability mass")
    top_k: int = setting(-1, "keep only the k most likely tokens (-1 = all)")
    min_p: float = setting(0.0, "drop tokens less likely than min_p times the most likely one")
    seed: int | None = setting(None, "seed of this request's sampling (reproducible output)", flag="--sampling-seed")
    max_tokens: int = setting(128, "most tokens to generate")
    stop: list[str] = setting(help="stop strings", cli=False, factory=list)
    stop_token_ids: list[int] = setting(help="token ids that end generation", cli=False, factory=list)
    stop_regex: list[str] = setting(help="regular expressions that end generation", cli=False, factory=list)
    ignore_eos: bool = setting(False, "keep generating past the model's end-of-sequence tokens")
    skip_special_tokens: bool = setting(True, "leave special tokens out of the text", cli=False)
    presence_penalty: float = setting(0.0, "subtracted from the logit of every token already generated")
    frequency_penalty: float = setting(0.0, "subtracted from a token's logit once per time it was generated")
    repetition_penalty: float = setting(
        1.0, "divides positive / multiplies negative logits of tokens in the prompt or output (> 1 discourages)"
    )
    logit_bias: dict[int, float] | None = setting(
        None, "token id -> bias in [-100, 100] added to its logit before sampling", cli=False
    )
    min_tokens: int = setting(
        0, "generate at least this many tokens before EOS, stop_token_ids or a stop string may end it"
    )
    json_schema: str | dict | None = setting(None, "the output is JSON valid for this JSON Schema", cli=False)
    regex: str | None = setting(None, "the output matches this regular expression", cli=False)
    grammar: str | None = setting(None, "the output is derived from this EBNF/GBNF grammar's root rule", cli=False)
    choice: list[str] | None = setting(None, "the output is exactly one of these strings", cli=False)
    prompt_logprobs: int | None = setting(
        None, "return the logprob of each prompt token and of this many top alternatives (0-20)", cli=False
    )
    logprobs: int | None = setting(
        None, "return the logprob of each sampled token and of this many top alternatives (0-20)", cli=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_regex = [self.stop_regex] if isinstance(self.stop_regex, str) else list(self.stop_regex or [])
        self.stop_token_ids = [int(t) for t in self.stop_token_ids or []]
        if self.logit_bias is not None:
            self.logit_bias = _checked_bias(self.logit_bias)
        if isinstance(self.json_schema, dict):
            self.json_schema = json.dumps(self.json_schema)
        self.validate()

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @functools.cached_property
    def packed(self) -> tuple[tuple[float, ...], tuple[int, int]]:
        """The sampler's per-request row: ``(temperature, top_p, min_p, presence, frequency, repetition)``
        and ``(top_k or 0, seed or -1)`` (computed once; the scheduler builds a batch from it every step)."""
        floats = (
            self.temperature, self.top_p, self.min_p, self.presence_penalty, self.frequency_penalty,
            self.repetition_penalty,
        )  # fmt: skip
        return floats, (self.top_k if self.top_k > 0 else 0, self.seed if self.seed is not None else -1)

    @functools.cached_property
    def sampler_flags(self) -> int:
        """Which sampler stages this request needs, as bits (:data:`SAMPLED` ... :data:`LOGPROBS`), so the
        scheduler can combine a batch's needs with one ``|`` per request."""
        sampled = self.temperature > 0
        filtered = self.top_k > 0 or self.top_p < 1.0 or self.min_p > 0.0
        return (
            (SAMPLED if sampled else 0)
            | (FILTERED if sampled and filtered else 0)
            | (SEEDED if sampled and self.seed is not None else 0)
            | (PENALIZED if self.has_penalties else 0)
            | (LOGPROBS if self.logprobs is not None else 0)
            | (BIASED if self.logit_bias or self.min_tokens > 0 else 0)
        )

    @functools.cached_property
    def constraint(self) -> Constraint | None:
        """The structured-output constraint of this request, if any (validated by :meth:`validate`)."""
        if self.json_schema is not None:
            schema = json.loads(self.json_schema)
            if schema == {"type": "object"}:
                return Constraint("json_object", "")
            return Constraint("json_schema", json.dumps(schema))
        if self.regex is not None:
            return Constraint("regex", self.regex)
        if self.grammar is not None:
            return Constraint("grammar", self.grammar)
        if self.choice is not None:
            return Constraint("choice", json.dumps(list(self.choice)))
        return None

    @property
    def has_penalties(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0 or self.repetition_penalty != 1.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid field."""
        checks = [
            (self.temperature >= 0.0, "temperature", "must be >= 0"),
            (0.0 < self.top_p <= 1.0, "top_p", "must be in (0, 1]"),
            (self.top_k == -1 or self.top_k >= 0, "top_k", "must be -1 (disabled) or >= 0"),
            (0.0 <= self.min_p <= 1.0, "min_p", "must be in [0, 1]"),
            (self.max_tokens >= 0, "max_tokens", "must be >= 0"),
            (isinstance(self.min_tokens, int) and 0 <= self.min_tokens, "min_tokens", "must be an integer >= 0"),
            (self.min_tokens <= self.max_tokens, "min_tokens", "must be <= max_tokens"),
            (all(isinstance(s, str) and s for s in self.stop), "stop", "must be non-empty strings"),
            (all(isinstance(s, str) and s for s in self.stop_regex), "stop_regex", "must be non-empty strings"),
            (all(t >= 0 for t in self.stop_token_ids), "stop_token_ids", "must be >= 0"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty", "must be in [-2, 2]"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty", "must be in [-2, 2]"),
            (0.0 < self.repetition_penalty <= 10.0, "repetition_penalty", "must be in (0, 10]"),
            (self.logprobs is None or 0 <= self.logprobs <= 20, "logprobs", "must be in [0, 20]"),
            (self.prompt_logprobs is None or 0 <= self.prompt_logprobs <= 20, "prompt_logprobs", "must be in [0, 20]"),
        ]
        _check_constraint(self)
        if self.seed is not None and not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        for ok, name, rule in checks:
            if not ok:
                raise ValueError(f"{name} {rule}, got {getattr(self, name)!r}")


def _checked_bias(bias: object) -> dict[int, float]:
    """``bias`` as ``{token id: float}`` (JSON's string keys converted); ``ValueError`` naming ``logit_bias``
    for a key that is not a token id >= 0 or a value outside [-100, 100]."""
    if not isinstance(bias, dict):
        raise ValueError(f"logit_bias must be a mapping of token id to bias, got {bias!r}")
    out: dict[int, float] = {}
    for key, value in bias.items():
        try:
            token = int(key)
            val = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"logit_bias must map token ids to numbers, got {key!r}: {value!r}") from None
        if token < 0 or isinstance(value, bool):
            raise ValueError(f"logit_bias must map token ids to numbers, got {key!r}: {value!r}")
        if not -100.0 <= val <= 100.0:
            raise ValueError(f"logit_bias values must be in [-100, 100], got {val!r} for token {token}")
        out[token] = val
    return out


def _check_constraint(p: SamplingParams) -> None:
    """``ValueError`` naming the field when more than one constraint is given or one is malformed."""
    given = [n for n in ("json_schema", "regex", "grammar", "choice") if getattr(p, n) is not None]
    if len(given) > 1:
        raise ValueError(f"{given[1]} cannot be combined with {given[0]}: give one structured-output constraint")
    if p.json_schema is not None:
        try:
            schema = json.loads(p.json_schema) if isinstance(p.json_schema, str) else p.json_schema
        except ValueError as exc:
            raise ValueError(f"json_schema is not valid JSON: {exc}") from None
        if not isinstance(schema, (dict, bool)):
            raise ValueError(f"json_schema must be a JSON object, got {type(schema).__name__}")
    for name in ("regex", "grammar"):
        value = getattr(p, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string")
    if p.choice is not None and (
        not isinstance(p.choice, list) or not p.choice or not all(isinstance(c, str) and c for c in p.choice)
    ):
        raise ValueError("choice must be a non-empty list of non-empty strings")
