"""The OpenAI-compatible server: an API process plus tokenizer, engine and detokenizer workers over ZeroMQ,
and the terminal chat client (:mod:`.shell`).

Entry points: :func:`run_server` (``minisgl serve``) and :class:`ServerThread` (the server inside another
program, e.g. the shell). They are imported on first use, so importing the shell does not start up FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServerThread", "run_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from minisgl_core.server import launch

        return getattr(launch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
