"""The llguidance backend against the core's grammar-backend conformance suite (the suite xgrammar passes)."""

from __future__ import annotations

from minisgl_core.testing import GrammarBackendSuite, use_plugin

use_plugin("minisgl_llguidance")


class TestLLGuidance(GrammarBackendSuite):
    backend = "llguidance"


class TestLLGuidanceAnyWhitespace(GrammarBackendSuite):
    backend = "llguidance"
    options = {"any_whitespace": "true"}
    walks = 2


class TestLLGuidanceThreadPool(GrammarBackendSuite):
    backend = "llguidance"
    options = {"fill_threads": "2"}
    walks = 1


def test_schemas_are_made_strict_and_ascii_without_touching_data() -> None:
    from minisgl_llguidance.backend import ascii_classes, strict_schema

    assert ascii_classes(r"\d{3}[\d_]\W\\d") == r"[0-9]{3}[0-9_][^A-Za-z0-9_]\\d"
    schema = {
        "type": "object",
        "properties": {"properties": {"type": "object", "properties": {"pattern": {"pattern": r"^\w+$"}}}},
        "$defs": {"code": {"type": "string", "pattern": r"\d"}},
        "enum": [{"properties": {"x": 1}, "pattern": r"\d"}],
        "additionalProperties": True,
    }
    assert strict_schema(schema) == {
        "type": "object",
        "properties": {
            "properties": {
                "type": "object",
                "properties": {"pattern": {"pattern": "^[A-Za-z0-9_]+$"}},
                "additionalProperties": False,
            }
        },
        "$defs": {"code": {"type": "string", "pattern": "[0-9]"}},
        "enum": [{"properties": {"x": 1}, "pattern": r"\d"}],
        "additionalProperties": True,  # an explicit choice is kept
    }
