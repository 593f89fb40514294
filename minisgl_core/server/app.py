"""The FastAPI application: routes, error handlers and middleware over one :class:`EngineClient`."""

from __future__ import annotations

import time
from importlib import metadata

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from minisgl_core.config import ServerArgs
from minisgl_core.server.asgi import APIKeyMiddleware, BodyLimitMiddleware, resolve_api_key
from minisgl_core.server.chat_stream import ChatSettings
from minisgl_core.server.engine_client import EngineClient
from minisgl_core.server.errors import error_response, install_error_handlers
from minisgl_core.server.metrics import Metrics
from minisgl_core.server.openai_protocol import ErrorResponse
from minisgl_core.server.openai_serving import OpenAIServing
from minisgl_core.server.protocol_chat import ChatCompletionRequest
from minisgl_core.server.protocol_completion import CompletionRequest
from minisgl_core.server.protocol_native import DetokenizeBody, GenerateRequest, TokenizeBody
from minisgl_core.server.request_checks import StopLimits
from minisgl_core.server.serving_chat import chat_completions as serve_chat
from minisgl_core.server.serving_completion import completions as serve_completions
from minisgl_core.server.serving_native import detokenize as serve_detokenize
from minisgl_core.server.serving_native import generate as serve_generate
from minisgl_core.server.serving_native import tokenize as serve_tokenize

ERRORS: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [
        (400, "invalid request"), (401, "missing or wrong API key"), (404, "unknown model"),
        (413, "request body too large"), (503, "the engine is unavailable"),
    ]
}  # fmt: skip


def _version() -> str:
    try:
        return metadata.version("minisgl-core")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_app(
    client: EngineClient, metrics: Metrics, args: ServerArgs, model_name: str, chat: ChatSettings | None = None
) -> FastAPI:
    """The HTTP API; ``client`` must be ready (its ``info`` set). ``chat``: sampling defaults and parsers."""
    app = FastAPI(title="minisgl", version=_version(), description="OpenAI-compatible minisgl server")
    install_error_handlers(app)
    chat = chat or ChatSettings()
    serving = OpenAIServing(client, [model_name], StopLimits.from_args(args), chat)
    created = int(time.time())
    assert client.info is not None
    max_model_len = client.info.max_model_len

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> Response:
        """200 while every worker lives and the engine beat within ``--engine-timeout``; else 503."""
        if client.unavailable is not None or client.stalled is not None:
            return error_response(503, client.unavailable or client.stalled or "")
        return JSONResponse({"status": "ok"})

    card = {
        "id": model_name, "object": "model", "created": created, "owned_by": "minisgl", "root": model_name,
        "parent": None, "max_model_len": max_model_len, "default_sampling_params": chat.defaults,
    }  # fmt: skip

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse({"object": "list", "data": [card]})

    @app.get("/v1/models/{model_id:path}", responses=ERRORS)
    async def model(model_id: str) -> Response:
        serving.model_name(model_id)
        return JSONResponse(card)

    @app.get("/version")
    async def version() -> Response:
        return JSONResponse({"version": _version()})

    @app.post("/tokenize", responses=ERRORS)
    async def tokenize(body: TokenizeBody) -> Response:
        return await serve_tokenize(serving, body, max_model_len)

    @app.post("/detokenize", responses=ERRORS)
    async def detokenize(body: DetokenizeBody) -> Response:
        return await serve_detokenize(serving, body)

    @app.get("/metrics")
    async def get_metrics() -> Response:
        stats = await client.stats()
        metrics.api_pending.set(len(client.generations))
        return Response(metrics.render(stats), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/chat/completions", responses=ERRORS)
    async def chat_completions(body: ChatCompletionRequest, raw: Request) -> Response:
        return await serve_chat(serving, body, raw)

    @app.post("/v1/completions", responses=ERRORS)
    async def completions(body: CompletionRequest, raw: Request) -> Response:
        return await serve_completions(serving, body, raw)

    @app.post("/generate", responses=ERRORS)
    async def generate(body: GenerateRequest, raw: Request) -> Response:
        return await serve_generate(serving, body, raw)

    app.add_middleware(BodyLimitMiddleware, max_bytes=args.max_request_bytes)
    api_key = resolve_api_key(args)
    if api_key:  # added last = outermost: unauthenticated bodies are never read
        app.add_middleware(APIKeyMiddleware, api_key=api_key, metrics=args.protect_metrics)
    return app
