"""minisgl: a small, fast, plugin-based LLM inference engine.

Public API: :class:`LLM`, :class:`SamplingParams`, :class:`RequestOutput`, and ``hookimpl`` for plugins.
What plugins implement and receive is in :mod:`minisgl_core.contracts`.
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any

from minisgl_core.contracts.hookspecs import hookimpl
from minisgl_core.contracts.sampling import SamplingParams

try:
    __version__ = metadata.version("minisgl-core")
except metadata.PackageNotFoundError:  # a checkout that is not installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from minisgl_core.llm import LLM, RequestOutput

__all__ = ["LLM", "RequestOutput", "SamplingParams", "__version__", "hookimpl"]


def __getattr__(name: str) -> Any:
    # LLM pulls in torch and the engine; plugins importing ``hookimpl`` should not pay for that.
    if name in ("LLM", "RequestOutput"):
        from minisgl_core import llm

        return getattr(llm, name)
    raise AttributeError(f"module 'minisgl_core' has no attribute {name!r}")
