"""Settings of the HTTP server itself (the engine's are :class:`minisgl_core.config.EngineConfig`)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields


@dataclass
class ServerArgs:
    host: str = "127.0.0.1"
    port: int = 30000
    """0 picks a free port (the ready line names it)."""
    api_key: str | None = None
    """When set, ``/v1/*`` and ``/generate`` need ``Authorization: Bearer <api_key>``."""
    served_model_name: str | None = None
    """The name clients pass as ``model`` (default: ``--model`` as given)."""
    max_request_bytes: int = 16 * 1024 * 1024
    log_interval: float = 10.0
    """Seconds between the engine's status lines while busy (0 = off)."""
    log_level: str = "INFO"
    death_grace: float = 2.0
    """After a worker died: seconds of answering 503 before the server exits (non-zero)."""


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """The flags of ``minisgl serve`` beyond the engine's."""
    g = parser.add_argument_group("server")
    g.add_argument("--host", default=ServerArgs.host)
    g.add_argument("--port", type=int, default=ServerArgs.port, help="0 = any free port")
    g.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on the API routes")
    g.add_argument("--served-model-name", default=None, help="model name clients use (default: --model)")
    g.add_argument("--max-request-bytes", type=int, default=ServerArgs.max_request_bytes)
    g.add_argument("--log-interval", type=float, default=ServerArgs.log_interval, help="busy status line period")


def server_args_from(args: argparse.Namespace) -> ServerArgs:
    values = {f.name: getattr(args, f.name) for f in fields(ServerArgs) if hasattr(args, f.name)}
    return ServerArgs(**values)
