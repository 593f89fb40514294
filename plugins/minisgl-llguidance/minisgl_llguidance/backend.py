"""The ``llguidance`` grammar backend: constraints compiled by llguidance (the library behind vLLM's
``guidance`` backend) for the model's vocabulary, one ``LLMatcher`` per request.

A compiled constraint is a matcher at the start of its grammar, built and checked on the core's compile
thread; each request gets a deep copy of it, which is cheap (no grammar work on the step loop).

Options: ``any_whitespace`` (``false`` by default: JSON is generated compact, as with xgrammar, so a weak
model cannot wander into endless whitespace) and ``fill_threads`` (threads filling a step's bitmask rows,
default 1: rows are filled one by one on the step loop's thread; more uses llguidance's thread pool).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from minisgl_core.contracts import Constraint, GrammarBackend, GrammarContext, GrammarMatcher, option_flag

PARALLEL_FROM = 8  # fewer constrained requests in a step: one by one even with a thread pool
_ASCII_CLASSES = {"d": "0-9", "w": "A-Za-z0-9_"}  # \d and \w as JSON Schema (ECMA-262) and xgrammar read them


def ascii_classes(pattern: str) -> str:
    r"""``pattern`` with ``\d``, ``\w`` (and ``\D``, ``\W`` outside brackets) spelled as ASCII ranges.
    llguidance's regex engine gives them Unicode meanings (any script's digits), which JSON Schema patterns
    and the other backend do not; everything else is left as written."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            ranges = _ASCII_CLASSES.get(nxt.lower())
            if ranges is not None and (in_class and nxt.islower()):
                out.append(ranges)
            elif ranges is not None and not in_class:
                out.append(f"[{'^' if nxt.isupper() else ''}{ranges}]")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")  # name -> schema
_DATA = ("enum", "const", "default", "examples")  # values, not schemas: left alone


def strict_schema(node: Any) -> Any:
    """A JSON Schema as strict outputs read it (OpenAI's ``strict``, xgrammar's strict mode): an object with
    ``properties`` and no ``additionalProperties`` gets ``false`` (llguidance would admit any extra key);
    every ``pattern`` (and ``patternProperties`` key) passes through :func:`ascii_classes`."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            name = ascii_classes if key == "patternProperties" else str
            out[key] = {name(k): strict_schema(v) for k, v in value.items()}
        elif key == "pattern" and isinstance(value, str):
            out[key] = ascii_classes(value)
        else:
            out[key] = value if key in _DATA else strict_schema(value)
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


class LLGuidanceMatcher(GrammarMatcher):
    """One request's position in its grammar (an llguidance ``LLMatcher``)."""

    def __init__(self, matcher: Any, stop_token_ids: frozenset[int]) -> None:
        self._matcher = matcher
        self._stops = stop_token_ids
        self._ended = False  # a stop token was accepted

    def fill_bitmask(self, bitmask: torch.Tensor, row: int) -> None:
        words = bitmask[row]
        self._matcher.unsafe_compute_mask_ptr(words.data_ptr(), words.numel() * words.element_size())

    def accept(self, token: int) -> bool:
        if token in self._stops:  # try_consume_tokens never takes a stop token: allowed where the grammar may end
            if not self._matcher.is_accepting() or not self._matcher.consume_token(token):
                return False
            self._ended = True
            return True
        return self._matcher.try_consume_tokens([token]) == 1  # refused: the matcher's state is unchanged

    def is_terminated(self) -> bool:
        # llguidance stops as soon as nothing but a stop token may follow; the output ends with that token
        # (as with xgrammar), or at once when the model has no stop token
        return self._ended or (not self._stops and bool(self._matcher.is_stopped()))

    def rollback(self, num_tokens: int) -> None:
        if num_tokens:
            self._matcher.rollback(num_tokens)
            self._ended = False


class LLGuidanceBackend(GrammarBackend):
    """Compiles constraints with llguidance for one tokenizer."""

    max_rollback_tokens = 1 << 30  # llguidance keeps the whole history

    def __init__(self, ctx: GrammarContext) -> None:
        import llguidance
        import llguidance.hf

        self._llg = llguidance
        flexible = option_flag(ctx.options, "any_whitespace")
        self._json_options = {"whitespace_flexible": flexible}
        if not flexible:
            self._json_options |= {"item_separator": ",", "key_separator": ":"}
        stops = list(ctx.stop_token_ids)
        self._stops = frozenset(stops)
        self._tokenizer = llguidance.hf.from_tokenizer(ctx.tokenizer, n_vocab=ctx.vocab_size, eos_token=stops or None)
        threads = int(ctx.options.get("fill_threads", "1"))
        self._executor = llguidance.LLExecutor(threads) if threads > 1 else None

    def _grammar(self, constraint: Constraint) -> str:
        kind, spec, llg = constraint.kind, constraint.spec, self._llg
        if kind in ("json_schema", "json_object"):
            schema = json.dumps(strict_schema(json.loads(spec))) if kind == "json_schema" else '{"type": "object"}'
            overrides = self._json_options if kind == "json_object" else None
            return llg.LLMatcher.grammar_from_json_schema(schema, defaults=self._json_options, overrides=overrides)
        if kind == "regex":
            return llg.LLMatcher.grammar_from_regex(ascii_classes(spec))
        if kind == "grammar":  # Lark, or GBNF/EBNF (converted to Lark)
            return llg.grammar_from("grammar", spec)
        if kind == "choice":
            return llg.LLMatcher.grammar_from_lark("start: " + " | ".join(json.dumps(c) for c in constraint.choices))
        raise ValueError(f"llguidance does not support constraint kind {kind!r}")

    def compile(self, constraint: Constraint) -> Any:
        try:
            grammar = self._grammar(constraint)
        except ValueError as exc:
            raise ValueError(f"{constraint.kind} cannot be compiled: {exc}") from None
        error = self._llg.LLMatcher.validate_grammar(grammar, self._tokenizer)
        if error:
            raise ValueError(f"{constraint.kind} cannot be compiled: {error.strip()}")
        matcher = self._llg.LLMatcher(self._tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ValueError(f"{constraint.kind} cannot be compiled: {matcher.get_error()}")
        return matcher

    def matcher(self, compiled: Any) -> GrammarMatcher:
        return LLGuidanceMatcher(compiled.deep_copy(), self._stops)

    def fill_bitmasks(self, matchers: Sequence[GrammarMatcher], bitmask: torch.Tensor, rows: Sequence[int]) -> None:
        """A step's rows: one by one, or with ``fill_threads`` > 1 on llguidance's threads (outside the GIL)."""
        if self._executor is None or len(matchers) < PARALLEL_FROM:
            return super().fill_bitmasks(matchers, bitmask, rows)
        assert bitmask.is_contiguous()
        pairs = [(m._matcher, row) for m, row in zip(matchers, rows)]  # type: ignore[attr-defined]
        row_bytes = bitmask.shape[1] * bitmask.element_size()
        self._executor.unsafe_compute_mask_ptr(pairs, bitmask.data_ptr(), row_bytes, bitmask.shape[0])
