"""minisgl-llguidance: registers the ``llguidance`` grammar backend (structured outputs) through the public hooks.

Importing this module stays cheap: the backend is named as ``"module:attribute"`` and llguidance is imported
only when the engine builds its grammar backend.
"""

from __future__ import annotations

from minisgl_core import hookimpl

__version__ = "0.1.0"


@hookimpl
def minisgl_register_grammar_backends(register) -> None:  # noqa: ANN001 - the core's register callback
    register(
        "llguidance",
        "minisgl_llguidance.backend:LLGuidanceBackend",
        description="JSON Schema, JSON, regex, Lark/GBNF and choice constraints (llguidance)",
        options=("any_whitespace", "fill_threads"),
    )
