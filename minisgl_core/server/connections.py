"""Client connections: close those that send no request, and cap how many are open at once.

uvicorn closes a keep-alive connection idle between requests (``--keep-alive-timeout``) but never one that
has not sent a request yet, nor one that sends half a request head and stops, so such sockets could pile up
until the process runs out of file descriptors. :func:`guarded_protocol` wraps uvicorn's HTTP protocol class:
a connection without a request in progress whose next request head has not arrived within ``--idle-timeout``
seconds of connecting (or of its first bytes after a response) is closed, and when ``--max-connections`` are
open a new one closes the longest idle connection (one not inside a request), or itself when all are busy.
Hitting the cap is logged (at most once per ``LOG_EVERY_S``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

logger = logging.getLogger("minisgl.api")

LOG_EVERY_S = 10.0
FD_RESERVE = 128
"""File descriptors kept for everything but client connections (worker sockets, files, the listener)."""


def connection_cap(wanted: int) -> int:
    """``wanted``, lowered to fit the open-file limit (whose soft value is first raised to the hard one)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    cap = max(1, min(wanted, soft - FD_RESERVE)) if soft != resource.RLIM_INFINITY else wanted
    if cap < wanted:
        logger.info("at most %d client connections (open-file limit %d)", cap, soft)
    return cap


class _Open:
    """The open connections, oldest first, and the rate limit of the cap's log line."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.conns: dict[Any, None] = {}
        self.logged = 0.0

    def admit(self, conn: Any) -> bool:
        """Register ``conn``; at the cap, close the oldest idle connection, or refuse ``conn`` (False)."""
        victim = None
        if len(self.conns) >= self.cap:
            victim = next((c for c in self.conns if _idle(c)), None)
            if victim is not None:
                self.discard(victim)
                victim.transport.close()
            now = time.monotonic()
            if now - self.logged >= LOG_EVERY_S:
                self.logged = now
                what = "closed the longest idle connection" if victim is not None else "refused a new connection"
                logger.warning("connection limit reached (%d open, --max-connections): %s", self.cap, what)
            if victim is None:
                return False
        self.conns[conn] = None
        return True

    def discard(self, conn: Any) -> None:
        self.conns.pop(conn, None)


def _idle(conn: Any) -> bool:
    cycle = conn.cycle
    return cycle is None or cycle.response_complete


def guarded_protocol(idle_timeout: float, max_connections: int) -> type:
    """uvicorn's HTTP protocol class (httptools when installed, else h11) with the two guards above."""
    open_conns = _Open(max_connections)

    class GuardedHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        _first_request: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if not open_conns.admit(self):
                transport.close()
                return
            if idle_timeout > 0:
                self._first_request = asyncio.get_running_loop().call_later(idle_timeout, self._no_request)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not _idle(self):  # a request head arrived
                if self._first_request is not None:
                    self._first_request.cancel()
                    self._first_request = None
            elif self._first_request is None and idle_timeout > 0 and not self.transport.is_closing():
                # part of a next request head (uvicorn stopped its keep-alive timer): it must complete in time
                self._first_request = asyncio.get_running_loop().call_later(idle_timeout, self._no_request)

        def connection_lost(self, exc: Exception | None) -> None:
            open_conns.discard(self)
            if self._first_request is not None:
                self._first_request.cancel()
            super().connection_lost(exc)

        def _no_request(self) -> None:
            self._first_request = None
            if _idle(self) and not self.transport.is_closing():
                self.transport.close()

    return GuardedHTTPProtocol
