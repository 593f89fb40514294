"""The tokenizer process: prompts (text, token ids or chat messages) -> validated engine requests.

Contract: every :class:`TokenizeRequest` yields either one :class:`EngineRequest` per rid (sent to the
engine in one batch per wake-up) or one :class:`RequestError` to the API server. Aborts pass through to the
engine on the same pipe as requests, so an abort can never overtake the request it cancels.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec
import zmq

from minisgl_core.contracts.request import checked_token_ids
from minisgl_core.server.gc_pauses import prepare_server_process
from minisgl_core.server.ipc import Addresses, Receiver, Sender, fail_start_up, setup_worker
from minisgl_core.server.messages import (
    TO_TOKENIZER,
    Abort,
    EngineInfo,
    EngineRequest,
    NewRequests,
    RequestError,
    TextAnswer,
    TextQuery,
    TokenizeRequest,
    WorkerReady,
)
from minisgl_core.server.threads import use_one_torch_thread
from minisgl_core.text import ChatTemplateError, apply_chat_template, load_tokenizer

logger = logging.getLogger("minisgl.tokenizer")


class PromptError(ValueError):
    """A prompt the engine cannot take; ``param`` names the offending request field."""

    def __init__(self, message: str, param: str | None) -> None:
        super().__init__(message)
        self.param = param


class PromptTokenizer:
    """Turns a :class:`TokenizeRequest` into engine requests, checking it against the engine's limits."""

    def __init__(self, tokenizer: Any, info: EngineInfo | None = None, chat_template: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.info = info
        self.chat_template = chat_template
        """``--chat-template``: replaces the tokenizer's (a request's own ``chat_template`` replaces both)."""

    def prompt_ids(self, req: TokenizeRequest) -> list[int]:
        if req.messages is not None:
            options = dict(req.chat or {})
            options["template"] = options.get("template") or self.chat_template
            try:
                return apply_chat_template(self.tokenizer, req.messages, **options)
            except ChatTemplateError as exc:
                raise PromptError(str(exc), exc.param) from None
        if req.token_ids is not None:
            return list(req.token_ids)
        if not req.text:
            raise PromptError("prompt is empty", "prompt")
        return self.tokenizer.encode(req.text, add_special_tokens=True)

    def build(self, req: TokenizeRequest) -> list[EngineRequest]:
        """Engine requests for ``req`` (``PromptError``/``ValueError`` when it cannot be served)."""
        param = "messages" if req.messages is not None else "prompt"
        ids = self.prompt_ids(req)
        if not ids:
            raise PromptError("prompt is empty", param)
        info = self.info
        if info is None:
            raise RuntimeError("tokenizer worker has no engine info yet")
        try:
            ids = checked_token_ids(ids, info.vocab_size)
        except ValueError as e:
            raise PromptError(str(e), param) from None
        room = info.max_model_len - len(ids)
        if room < 1:
            raise PromptError(
                f"This model's maximum context length is {info.max_model_len} tokens. However, your prompt "
                f"has {len(ids)} tokens (at least one token must be left for the completion).",
                param,
            )
        if req.max_tokens is not None and req.max_tokens > room:
            raise PromptError(
                f"This model's maximum context length is {info.max_model_len} tokens. However, you requested "
                f"{len(ids) + req.max_tokens} tokens ({len(ids)} in the prompt, {req.max_tokens} for the "
                "completion). Please reduce the prompt or the completion length.",
                "max_tokens",
            )
        max_tokens = req.max_tokens
        if max_tokens is None:
            max_tokens = room if req.default_max_tokens is None else min(room, req.default_max_tokens)
        out = []
        for rid, params in zip(req.rids, req.params):
            if params.min_tokens > max_tokens:  # max_tokens was left out: the engine would refuse the params
                raise PromptError(
                    f"min_tokens ({params.min_tokens}) must be <= max_tokens, which defaults to {max_tokens} for "
                    f"this prompt ({len(ids)} tokens, a context of {info.max_model_len})",
                    "min_tokens",
                )
            params.max_tokens = max_tokens
            logger.debug("request %s: %d prompt tokens, %s", rid, len(ids), params)
            out.append(EngineRequest(rid, ids, params, req.echo))
        return out

    def answer(self, q: TextQuery) -> TextAnswer:
        """``/tokenize`` and ``/detokenize``."""
        tok = self.tokenizer
        try:
            if q.token_ids is not None:
                vocab = self.info.vocab_size if self.info is not None else len(tok)
                ids = checked_token_ids(q.token_ids, vocab) if q.token_ids else []
                return TextAnswer(q.qid, ids, tok.decode(ids, skip_special_tokens=False))
            if q.messages is not None:  # the template a chat request would get
                ids = self.prompt_ids(TokenizeRequest([], [], messages=q.messages, chat=q.chat))
            else:
                ids = tok.encode(q.text or "", add_special_tokens=q.add_special_tokens)
        except Exception as exc:  # noqa: BLE001 - a template or tokenizer failure is the client's 400
            return TextAnswer(q.qid, error=str(exc).replace("prompt token ids", "tokens"))
        strs = tok.convert_ids_to_tokens(ids) if q.token_strs else None
        return TextAnswer(q.qid, ids, token_strs=strs)


def _serve(tok: PromptTokenizer, inbox: Receiver, to_engine: Sender, to_api: Sender) -> None:
    while True:
        batch: list[EngineRequest] = []
        for msg in inbox.recv_all(block=True):
            if isinstance(msg, TokenizeRequest):
                try:
                    batch += tok.build(msg)
                except PromptError as exc:
                    to_api.send(RequestError(msg.rids, str(exc), 400, exc.param))
                except ValueError as exc:
                    to_api.send(RequestError(msg.rids, str(exc), 400, None))
                except Exception as exc:  # noqa: BLE001 - a template or tokenizer failure must not kill us
                    logger.exception("tokenizing request %s failed", msg.rids[:1])
                    to_api.send(RequestError(msg.rids, f"tokenization failed: {exc}", 400, None))
            elif isinstance(msg, Abort):
                if batch:  # keep the order: requests before the aborts that follow them
                    to_engine.send(NewRequests(batch))
                    batch = []
                to_engine.send(msg)
            elif isinstance(msg, EngineInfo):
                tok.info = msg
            elif isinstance(msg, TextQuery):
                to_api.send(tok.answer(msg))
        if batch:
            to_engine.send(NewRequests(batch))


def run_tokenizer_worker(
    tokenizer_path: str,
    addrs: Addresses,
    log_level: str,
    gc_warning_threshold_s: float,
    chat_template: str | None = None,
) -> None:
    """Process entry point: load the tokenizer, report ready to the API server, then serve."""
    setup_worker("tokenizer", log_level)
    ctx = zmq.Context()
    to_api = Sender(ctx, addrs.api)
    try:
        tok = PromptTokenizer(load_tokenizer(tokenizer_path), chat_template=chat_template)
        inbox = Receiver(ctx, addrs.tokenizer, TO_TOKENIZER)
        to_engine = Sender(ctx, addrs.engine)
    except Exception as exc:  # noqa: BLE001 - reported to the launcher
        fail_start_up(to_api, "tokenizer", exc)
    use_one_torch_thread()  # after loading: the tokenizer may have imported torch
    prepare_server_process("tokenizer", gc_warning_threshold_s)
    to_api.send(WorkerReady("tokenizer", os.getpid()))
    try:
        _serve(tok, inbox, to_engine, to_api)
    except msgspec.DecodeError:
        logger.exception("undecodable message")
        raise
