"""Conformance suite for grammar backends (structured outputs): every constraint kind compiles, its matcher's
bitmask admits exactly the continuations of the constraint, walks under the mask end in valid output, bad
constraints are ``ValueError``, and rollback restores the state.

A grammar plugin's whole test::

    from minisgl_core.testing import GrammarBackendSuite

    class TestMyGrammar(GrammarBackendSuite):
        backend = "my-grammar"

The suite runs on the offline byte-level tokenizer (:func:`byte_tokenizer`: one token per byte), with a
vocabulary padded past the tokenizer (``vocab_size`` larger than its length, as real models have) and its
``<|im_end|>`` as the stop token. Walks pick random allowed tokens (seeded), preferring the stop token and
closing characters, so they end.
"""

from __future__ import annotations

import json
import random
import re
from types import MappingProxyType
from typing import Any, ClassVar

import pytest
import torch

from minisgl_core.contracts.grammar import CONSTRAINT_KINDS, Constraint, GrammarBackend, GrammarContext, GrammarMatcher
from minisgl_core.plugins import GRAMMAR, build
from minisgl_core.testing.suite_base import ConformanceSuite
from minisgl_core.testing.tiny_models import byte_tokenizer

PADDING = 40
CLOSING = set('"}]0 )')
SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 6}, "n": {"type": "integer"}},
     "required": ["name", "n"]},
    {"type": "object", "properties": {"tags": {"type": "array", "items": {"enum": ["x", "y"]}, "maxItems": 3},
                                      "ok": {"type": "boolean"}}, "required": ["tags", "ok"]},
    {"type": "object", "properties": {"inner": {"type": "object", "properties": {
        "v": {"type": "number", "minimum": -5, "maximum": 5}}, "required": ["v"]}}, "required": ["inner"]},
    {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"}},
     "required": ["code"]},
]  # fmt: skip
REGEXES = [r"[a-z]{2,5}@example\.(com|org)", r"\d{3}-\d{4}", r"(yes|no|maybe)!?"]


class GrammarBackendSuite(ConformanceSuite):
    """Subclass and set :attr:`backend` (the registered name) and, if needed, :attr:`options`."""

    backend: ClassVar[str] = "xgrammar"
    """The grammar backend under test, as ``--grammar-backend`` names it."""
    kinds: ClassVar[tuple[str, ...]] = CONSTRAINT_KINDS
    """The constraint kinds it supports; the others must be refused with ``ValueError``."""
    walks: ClassVar[int] = 4
    """Random walks per constraint."""
    max_steps: ClassVar[int] = 400
    """Most tokens a walk may take before it must have ended."""

    @pytest.fixture(scope="class")
    @classmethod
    def tokenizer(cls) -> Any:
        return byte_tokenizer()

    @pytest.fixture(scope="class")
    @classmethod
    def grammar(cls, tokenizer: Any) -> GrammarBackend:
        ctx = GrammarContext(
            tokenizer, len(tokenizer) + PADDING, (tokenizer.eos_token_id,), MappingProxyType(dict(cls.options))
        )
        return build(GRAMMAR, cls.backend, ctx, GrammarBackend)

    # -- helpers ----------------------------------------------------------------------------------------

    @staticmethod
    def allowed(grammar: GrammarBackend, matcher: GrammarMatcher, vocab: int) -> list[int]:
        mask = grammar.allocate_bitmask(2, vocab)
        mask.zero_()
        matcher.fill_bitmask(mask, 1)
        assert not mask[0].any(), "fill_bitmask wrote outside its row"
        bits = (mask[1].unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1
        return bits.flatten()[:vocab].nonzero().flatten().tolist()

    def walk(self, grammar: GrammarBackend, compiled: Any, tokenizer: Any, seed: int) -> str:
        """Sample allowed tokens until the stop token; returns the text before it."""
        rng = random.Random(seed)
        matcher = grammar.matcher(compiled)
        vocab, eos = len(tokenizer) + PADDING, tokenizer.eos_token_id
        out: list[int] = []
        for _ in range(self.max_steps):
            allowed = self.allowed(grammar, matcher, vocab)
            assert allowed, f"dead end after {tokenizer.decode(out)!r}"
            assert max(allowed) < len(tokenizer), "a token past the tokenizer was allowed"
            closing = [t for t in allowed if tokenizer.decode([t]) in CLOSING]
            if eos in allowed:
                token = eos
            elif closing and rng.random() < 0.6:
                token = rng.choice(closing)
            else:
                token = rng.choice(allowed)
            assert matcher.accept(token), f"an allowed token {token} was refused"
            if token == eos:
                assert matcher.is_terminated()
                return tokenizer.decode(out)
            out.append(token)
        raise AssertionError(f"no end after {self.max_steps} tokens: {tokenizer.decode(out)!r}")

    def needs(self, *kinds: str) -> None:
        missing = [k for k in kinds if k not in self.kinds]
        if missing:
            pytest.skip(f"{self.backend} does not support {', '.join(missing)}")

    # -- tests ------------------------------------------------------------------------------------------

    def test_unsupported_kinds_are_value_errors(self, grammar: GrammarBackend) -> None:
        specs = {"json_schema": "{}", "json_object": "", "regex": "a", "grammar": 'root ::= "a"', "choice": '["a"]'}
        for kind in set(CONSTRAINT_KINDS) - set(self.kinds):
            with pytest.raises(ValueError):
                grammar.compile(Constraint(kind, specs[kind]))

    def test_json_schema_walks_validate(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        self.needs("json_schema")
        jsonschema = pytest.importorskip("jsonschema")
        for schema in SCHEMAS:
            compiled = grammar.compile(Constraint("json_schema", json.dumps(schema)))
            for seed in range(self.walks):
                jsonschema.validate(json.loads(self.walk(grammar, compiled, tokenizer, seed)), schema)

    def test_json_object_walks_parse(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        self.needs("json_object")
        compiled = grammar.compile(Constraint("json_object", ""))
        for seed in range(self.walks):
            assert isinstance(json.loads(self.walk(grammar, compiled, tokenizer, seed)), dict)

    def test_regex_walks_match(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        self.needs("regex")
        for pattern in REGEXES:
            compiled = grammar.compile(Constraint("regex", pattern))
            for seed in range(self.walks):
                text = self.walk(grammar, compiled, tokenizer, seed)
                assert re.fullmatch(pattern, text), (pattern, text)

    def test_grammar_and_choice(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        if "grammar" in self.kinds:
            ebnf = 'root ::= "(" item ("," item)* ")"\nitem ::= [a-c]+'
            compiled = grammar.compile(Constraint("grammar", ebnf))
            for seed in range(self.walks):
                assert re.fullmatch(r"\([a-c]+(,[a-c]+)*\)", self.walk(grammar, compiled, tokenizer, seed))
        self.needs("choice")
        choices = ["red", "green", 'say "hi"', "grün"]
        compiled = grammar.compile(Constraint("choice", json.dumps(choices)))
        seen = {self.walk(grammar, compiled, tokenizer, seed) for seed in range(4 * self.walks)}
        assert seen <= set(choices) and len(seen) >= 2

    def test_mask_admits_exactly_the_continuations(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        self.needs("choice")
        matcher = grammar.matcher(grammar.compile(Constraint("choice", json.dumps(["ab", "ac", "b"]))))
        vocab = len(tokenizer) + PADDING
        ids = {ch: tokenizer.convert_tokens_to_ids(ch) for ch in "abc"}
        assert set(self.allowed(grammar, matcher, vocab)) == {ids["a"], ids["b"]}
        assert not matcher.accept(ids["c"]), "a token outside the mask was accepted"
        assert matcher.accept(ids["a"])
        assert set(self.allowed(grammar, matcher, vocab)) == {ids["b"], ids["c"]}
        assert matcher.accept(ids["c"]) and not matcher.is_terminated()
        assert self.allowed(grammar, matcher, vocab) == [tokenizer.eos_token_id]

    def test_batch_fill_equals_one_by_one(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        kind, spec = ("regex", REGEXES[0]) if "regex" in self.kinds else ("choice", '["alpha", "beta", "gamma"]')
        self.needs(kind)
        compiled, vocab, rng = grammar.compile(Constraint(kind, spec)), len(tokenizer) + PADDING, random.Random(1)
        matchers = []
        for i in range(12):  # matchers at different positions
            matcher = grammar.matcher(compiled)
            for _ in range(i % 4):
                allowed = [t for t in self.allowed(grammar, matcher, vocab) if t != tokenizer.eos_token_id]
                if allowed:
                    assert matcher.accept(rng.choice(allowed))
            matchers.append(matcher)
        rows = [2 * i + 1 for i in range(len(matchers))]
        one, batch = grammar.allocate_bitmask(25, vocab), grammar.allocate_bitmask(25, vocab)
        for matcher, row in zip(matchers, rows):
            matcher.fill_bitmask(one, row)
        grammar.fill_bitmasks(matchers, batch, rows)
        assert torch.equal(one, batch), "fill_bitmasks differs from fill_bitmask row by row (or wrote other rows)"

    def test_rollback_restores_the_state(self, grammar: GrammarBackend, tokenizer: Any) -> None:
        self.needs("regex")
        if grammar.max_rollback_tokens < 2:
            pytest.skip("the backend does not roll back")
        matcher = grammar.matcher(grammar.compile(Constraint("regex", r"[a-z]+-[0-9]+")))
        vocab = len(tokenizer) + PADDING
        before = self.allowed(grammar, matcher, vocab)
        for ch in "ab":
            assert matcher.accept(tokenizer.convert_tokens_to_ids(ch))
        after = self.allowed(grammar, matcher, vocab)
        assert after != before
        matcher.rollback(2)
        assert self.allowed(grammar, matcher, vocab) == before

    @pytest.mark.parametrize(
        "kind,spec",
        [("regex", "[a-"), ("grammar", "root ::= undefined_rule"), ("json_schema", '{"type": "no-such-type"}')],
    )
    def test_bad_constraints_are_value_errors(self, grammar: GrammarBackend, kind: str, spec: str) -> None:
        self.needs(kind)
        with pytest.raises(ValueError):
            grammar.compile(Constraint(kind, spec))
