"""The xgrammar backend against the core's grammar-backend conformance suite."""

from __future__ import annotations

from minisgl_core.testing import GrammarBackendSuite, use_plugin

use_plugin("minisgl_xgrammar")


class TestXGrammar(GrammarBackendSuite):
    backend = "xgrammar"


class TestXGrammarAnyWhitespace(GrammarBackendSuite):
    backend = "xgrammar"
    options = {"any_whitespace": "true"}
    walks = 2
