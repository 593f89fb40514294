"""minisgl-xgrammar: registers the ``xgrammar`` grammar backend (structured outputs) through the public hooks.

Importing this module stays cheap: the backend is named as ``"module:attribute"`` and xgrammar is imported
only when the first constrained request arrives.
"""

from __future__ import annotations

from minisgl_core import hookimpl

__version__ = "0.1.0"


@hookimpl
def minisgl_register_grammar_backends(register) -> None:  # noqa: ANN001 - the core's register callback
    register(
        "xgrammar",
        "minisgl_xgrammar.backend:XGrammarBackend",
        description="JSON Schema, JSON, regex, EBNF/GBNF and choice constraints (xgrammar)",
        options=("any_whitespace", "max_threads", "fill_threads"),
    )
