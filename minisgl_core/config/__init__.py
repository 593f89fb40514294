"""Settings, each declared once with its default and help text: the engine's (:class:`EngineConfig`) and the
HTTP server's (:class:`ServerArgs`). CLI flags and ``LLM(**kwargs)`` are generated from these fields
(:mod:`minisgl_core.contracts.settings` describes how)."""

from minisgl_core.config.engine import DTYPES, LOAD_FORMATS, OPTION_FIELDS, EngineConfig
from minisgl_core.config.server import ServerArgs

__all__ = ["DTYPES", "LOAD_FORMATS", "OPTION_FIELDS", "EngineConfig", "ServerArgs"]
