"""ASGI plumbing under the routes: server-sent events, the request-size limit and bearer-token auth.

Both middlewares are plain ASGI (no ``BaseHTTPMiddleware``), so the app's ``receive`` still reports client
disconnects, which is how a generation learns that its client is gone.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from msgspec import json as mjson
from starlette.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from minisgl_core.config import ServerArgs
from minisgl_core.server.errors import error_body

SSE_DONE = b"data: [DONE]\n\n"
API_KEY_ENV = "MINISGL_API_KEY"


class SSEResponse(StreamingResponse):
    """Streams ``chunks`` (already framed as ``data: ...\\n\\n``); closes the iterator however it ends, so
    its ``finally`` runs at once when the client disconnects."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        super().__init__(chunks, media_type="text/event-stream", headers=headers)
        self.chunks = chunks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away while we were sending
        finally:
            await self.chunks.aclose()  # type: ignore[attr-defined]


async def _send_error(
    send: Send, status: int, message: str, extra_headers: list | None = None, code: str | None = None
) -> None:
    body = json.dumps(error_body(status, message, None, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyLimitMiddleware:
    """Reject request bodies over ``max_bytes`` with 413; the app then sees the buffered body followed by
    the real ``receive`` (for disconnects)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _send_error(send, 413, f"request body is larger than {limit} bytes")
                return
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_error(send, 413, f"request body is larger than {limit} bytes")
                return
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(parts)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def resolve_api_key(args: ServerArgs) -> str | None:
    """The API key: ``--api-key``, else the contents of ``--api-key-file``, else ``$MINISGL_API_KEY``
    (the last two keep it out of ``ps``). ``OSError`` when the file cannot be read; ``ValueError`` if empty."""
    if args.api_key:
        return args.api_key
    if args.api_key_file:
        with open(args.api_key_file, encoding="utf-8") as f:
            key = f.read().strip()
        if not key:
            raise ValueError(f"the API key file {args.api_key_file} is empty")
        return key
    return os.environ.get(API_KEY_ENV) or None


class APIKeyMiddleware:
    """Require ``Authorization: Bearer <key>`` (scheme in any case, RFC 7235) on the API routes (``/v1/...``
    and ``/generate``), and on ``/metrics`` when ``metrics`` is set."""

    def __init__(self, app: ASGIApp, api_key: str, metrics: bool = False) -> None:
        self.app = app
        self.expected = api_key.encode()
        self.metrics = metrics

    def _protected(self, path: str) -> bool:
        return path.startswith("/v1/") or path == "/generate" or (self.metrics and path == "/metrics")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._protected(scope.get("path", "")) and scope["method"] != "OPTIONS":
            scheme, _, token = dict(scope.get("headers", ())).get(b"authorization", b"").strip().partition(b" ")
            ok = scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.expected)
            if not ok:
                headers = [(b"www-authenticate", b"Bearer")]
                message = "invalid or missing API key (Authorization: Bearer ...)"
                await _send_error(send, 401, message, headers, "invalid_api_key")
                return
        await self.app(scope, receive, send)


def sse(data: Any) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    return b"data: " + mjson.encode(data) + b"\n\n"
