"""Settings of the HTTP server itself (the engine's are :class:`minisgl_core.config.EngineConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from minisgl_core.contracts.settings import setting


@dataclass
class ServerArgs:
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(30000, "port to listen on (0 = any free port; the ready line names it)")
    api_key: str | None = setting(None, "require 'Authorization: Bearer KEY' on the API routes")
    served_model_name: str | None = setting(None, "the model name clients use (default: --model as given)")
    max_request_bytes: int = setting(16 * 1024 * 1024, "largest request body accepted")
    log_interval: float = setting(10.0, "seconds between the engine's status lines while busy (0 = off)")
    log_level: str = setting("INFO", cli=False)
    death_grace: float = setting(2.0, "after a worker died: seconds of answering 503 before exiting", cli=False)
