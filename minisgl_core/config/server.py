"""Settings of the HTTP server itself (the engine's are :class:`minisgl_core.config.EngineConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from minisgl_core.contracts.settings import setting


@dataclass
class ServerArgs:
    host: str = setting("127.0.0.1", "address to listen on")
    port: int = setting(30000, "port to listen on (0 = any free port; the ready line names it)")
    api_key: str | None = setting(
        None, "require 'Authorization: Bearer KEY' on the API routes (visible in ps: prefer --api-key-file or "
        "the MINISGL_API_KEY environment variable)"
    )  # fmt: skip
    api_key_file: str | None = setting(None, "read the API key from this file (surrounding whitespace dropped)")
    protect_metrics: bool = setting(False, "require the API key on /metrics too")
    served_model_name: str | None = setting(None, "the model name clients use (default: --model as given)")
    max_request_bytes: int = setting(16 * 1024 * 1024, "largest request body accepted")
    max_stop_strings: int = setting(64, "most stop strings one request may give (more: 400)")
    max_stop_chars: int = setting(8192, "largest total length in characters of one request's stop strings")
    max_stop_regex: int = setting(8, "most stop_regex patterns one request may give")
    max_stop_regex_chars: int = setting(1024, "largest total length of one request's stop_regex patterns")
    stop_regex_window: int = setting(256, "stop_regex patterns are searched in this many last characters")
    engine_timeout: float = setting(
        30.0, "seconds without a heartbeat from the engine before /health and the pending requests answer 503 "
        "(0 = off)"
    )  # fmt: skip
    idle_timeout: float = setting(5.0, "close a connection that sent no complete request head in this many s (0 = off)")
    keep_alive_timeout: float = setting(5.0, "close a keep-alive connection idle this many seconds between requests")
    max_connections: int = setting(
        4096, "most open client connections (capped by the open-file limit); beyond it the longest idle one is "
        "closed, or the new one when none is idle"
    )  # fmt: skip
    log_interval: float = setting(10.0, "seconds between the engine's status lines while busy (0 = off)")
    gc_warning_threshold_secs: float = setting(
        0.0, "log a warning for each garbage collection that holds a server process this many seconds or "
        "longer (0 = off; every process freezes its start-up heap out of collection either way)"
    )  # fmt: skip
    log_level: str = setting("INFO", cli=False)
    chat_template: str | None = setting(
        None, "chat template replacing the tokenizer's: a Jinja FILE or the template text itself"
    )
    reasoning_parser: str | None = setting(
        None, "split reasoning (<think>...</think>) into reasoning_content", kind="reasoning-parser"
    )
    tool_call_parser: str | None = setting(
        None, "parse tool calls out of the output into tool_calls", kind="tool-parser", aliases=("tool_parser",)
    )
    death_grace: float = setting(2.0, "after a worker died: seconds of answering 503 before exiting", cli=False)
