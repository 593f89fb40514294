"""The API server's side of the pipeline: submit requests, route outputs back to them, abort, fail.

One asyncio task reads everything the workers send to the API server and hands each
:class:`RequestOutput` to the :class:`Generation` that owns its rid: a list append and an event set, nothing
per token beyond that. A generation whose client disconnected, or that is closed before it finished,
aborts its unfinished engine requests (through the tokenizer, so the abort never overtakes the request).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import zmq
import zmq.asyncio

from minisgl_core.server.errors import APIError, ClientGone
from minisgl_core.server.ipc import Addresses, pull_socket, push_socket
from minisgl_core.server.messages import (
    TO_API,
    Abort,
    DetokOutputs,
    EngineInfo,
    EngineStats,
    Heartbeat,
    RequestError,
    RequestOutput,
    StatsRequest,
    TextAnswer,
    TextQuery,
    TokenizeRequest,
    WorkerFailed,
    WorkerReady,
    encode,
)
from minisgl_core.server.metrics import Metrics

logger = logging.getLogger("minisgl.api")

WORKERS = ("tokenizer", "engine", "detokenizer")


class StartupError(RuntimeError):
    """A worker failed (or died) before the server became ready."""


class Generation:
    """The engine requests behind one HTTP request (``n`` choices times the prompts), in choice order."""

    def __init__(self, client: EngineClient, rids: list[str], prompt_index: list[int]) -> None:
        self.client = client
        self.rids = rids
        self.prompt_index = prompt_index
        self.index = {rid: i for i, rid in enumerate(rids)}
        self.unfinished = set(rids)
        self.start = time.monotonic()
        self.last_time = [0.0] * len(rids)
        self._outputs: list[tuple[int, RequestOutput]] = []
        self._event = asyncio.Event()
        self._error: BaseException | None = None
        self._watcher: asyncio.Task | None = None
        self._handed = [False] * len(rids)
        """Per choice: :meth:`next` returned an output of it (the first is the engine's acceptance)."""

    @property
    def finished(self) -> bool:
        return not self.unfinished

    def _push(self, out: RequestOutput) -> None:
        i = self.index[out.rid]
        self.last_time[i] = self.client.metrics.on_output(self.start, self.last_time[i], out)
        if out.finish_reason is not None:
            self.unfinished.discard(out.rid)
        self._outputs.append((i, out))
        self._event.set()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._event.set()

    async def next(self) -> list[tuple[int, RequestOutput]]:
        """The outputs that arrived since the last call, as ``(choice index, output)``, at most one per
        choice (a slow consumer gets bigger deltas, not more of them); waits for at least one. A choice's first
        output (the engine's acceptance) is returned alone; what followed it waits for the next call. Raises
        :class:`APIError` (rejected, workers gone) or :class:`ClientGone`."""
        while not self._outputs:
            if self._error is not None:
                raise self._error
            await self._event.wait()
            self._event.clear()
        outs, self._outputs = self._outputs, []
        ready: dict[int, RequestOutput] = {}
        for i, out in outs:
            if i not in ready:
                ready[i] = out
            elif self._handed[i] or ready[i].token_ids:
                ready[i] = _merge(ready[i], out)
            else:  # this choice's acceptance leaves alone (a stream's first event); the rest waits
                self._outputs.append((i, out))
        for i in ready:
            self._handed[i] = True
        if self._outputs:
            self._event.set()
        return list(ready.items())

    def watch_disconnect(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Abort when the ASGI ``receive`` reports that the client went away."""

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not self.finished:
                self.fail(ClientGone())
                self.close()

        self._watcher = asyncio.ensure_future(watch())

    def close(self) -> None:
        """Forget this generation; abort what is still running. Idempotent."""
        if self._watcher is not None and self._watcher is not asyncio.current_task():
            self._watcher.cancel()
        self.client._forget(self)


def _merge(a: RequestOutput, b: RequestOutput) -> RequestOutput:
    """One output covering ``a`` then ``b`` (of the same request)."""
    logprobs = (a.logprobs or []) + (b.logprobs or []) if a.logprobs is not None or b.logprobs is not None else None
    return RequestOutput(
        b.rid, a.text + b.text, a.token_ids + b.token_ids, b.finish_reason, b.prompt_tokens, b.completion_tokens,
        b.cached_tokens, logprobs, b.matched_stop, a.prompt_text or b.prompt_text,
        a.prompt_logprobs or b.prompt_logprobs,
    )  # fmt: skip


class EngineClient:
    """ZeroMQ sockets of the API server, the handshake with the workers, and request routing."""

    def __init__(self, addrs: Addresses, metrics: Metrics) -> None:
        self.ctx = zmq.asyncio.Context()
        self.inbox = pull_socket(self.ctx, addrs.api)
        self.to_tokenizer = push_socket(self.ctx, addrs.tokenizer)
        self.to_engine = push_socket(self.ctx, addrs.engine)
        self.decoder = msgspec.msgpack.Decoder(TO_API)
        self.metrics = metrics
        self.info: EngineInfo | None = None
        self.generations: dict[str, Generation] = {}
        self.unavailable: str | None = None
        """Why the server cannot serve any more (a worker died, shutting down); None while healthy."""
        self.last_stats: EngineStats | None = None
        self.last_beat = time.monotonic()
        self.stalled: str | None = None
        """Why the engine counts as hung (no heartbeat within ``--engine-timeout``); None while it beats."""
        self._stats_waiters: list[asyncio.Future] = []
        self._text_waiters: dict[int, asyncio.Future] = {}
        self._ids = itertools.count()
        self._reader: asyncio.Task | None = None

    # -- start-up ---------------------------------------------------------------------------------------

    async def wait_ready(self, check_alive: Callable[[], str | None]) -> EngineInfo:
        """Wait for every worker's ready message; ``check_alive`` names a dead worker, if any."""
        ready: set[str] = set()
        while ready != set(WORKERS):
            if await self.inbox.poll(250):
                msg = self.decoder.decode(await self.inbox.recv())
                if isinstance(msg, WorkerFailed):
                    raise StartupError(f"the {msg.name} worker failed to start: {msg.error}")
                if isinstance(msg, WorkerReady):
                    ready.add(msg.name)
                    if msg.info is not None:
                        self.info = msg.info
                    logger.info("%s worker ready (pid %d)", msg.name, msg.pid)
            else:
                dead = check_alive()
                if dead:
                    raise StartupError(f"the {dead} worker exited during start-up")
        assert self.info is not None
        self.to_tokenizer.send(encode(self.info))
        return self.info

    def start(self) -> None:
        self.last_beat = time.monotonic()
        self._reader = asyncio.ensure_future(self._read_loop())

    # -- requests ---------------------------------------------------------------------------------------

    def submit(self, prompts: list[TokenizeRequest]) -> Generation:
        """Send prompts (each with one ``SamplingParams`` per choice, rids unset) to the tokenizer."""
        if self.unavailable is not None or self.stalled is not None:
            raise APIError(503, self.unavailable or self.stalled or "")
        rids: list[str] = []
        prompt_index: list[int] = []
        for p, req in enumerate(prompts):
            req.rids = [str(next(self._ids)) for _ in req.params]
            rids += req.rids
            prompt_index += [p] * len(req.rids)
        try:
            frames = [encode(req) for req in prompts]  # before registering: a failure leaves nothing behind
        except (UnicodeEncodeError, msgspec.EncodeError) as exc:
            raise APIError(400, f"the request cannot be encoded: {exc}") from None
        gen = Generation(self, rids, prompt_index)
        for rid in rids:
            self.generations[rid] = gen
        for frame in frames:
            self.to_tokenizer.send(frame)
        return gen

    def _forget(self, gen: Generation) -> None:
        for rid in gen.rids:
            self.generations.pop(rid, None)
        if gen.unfinished and self.unavailable is None:
            self.to_tokenizer.send(encode(Abort(sorted(gen.unfinished))))
            gen.unfinished.clear()

    def check_engine(self, timeout: float) -> None:
        """Called periodically: when the engine missed its heartbeats for ``timeout`` seconds, answer every
        pending request (and later ones, and ``/health``) with 503 until it beats again."""
        late = time.monotonic() - self.last_beat
        if 0 < timeout < late and self.stalled is None:  # timeout 0: the check is off
            self.stalled = f"the engine has not reported for {late:.0f} s (--engine-timeout {timeout:g}): hung?"
            logger.error("%s; failing %d pending requests", self.stalled, len(self.generations))
            for gen in set(self.generations.values()):
                gen.fail(APIError(503, self.stalled))
        elif late <= timeout and self.stalled is not None:
            logger.info("the engine reports again")
            self.stalled = None

    def fail_all(self, status: int, message: str) -> None:
        """Stop serving: every open generation and every later request fails with ``status``."""
        self.unavailable = message
        for gen in set(self.generations.values()):
            gen.fail(APIError(status, message))

    async def stats(self, timeout: float = 2.0) -> EngineStats | None:
        """A fresh engine snapshot (the last one seen when the engine does not answer in time)."""
        if self.unavailable is None:
            fut = asyncio.get_running_loop().create_future()
            self._stats_waiters.append(fut)
            self.to_engine.send(encode(StatsRequest()))
            try:
                return await asyncio.wait_for(asyncio.shield(fut), timeout)
            except asyncio.TimeoutError:
                pass
        return self.last_stats

    async def text_query(self, query: TextQuery, timeout: float = 30.0) -> TextAnswer:
        """Ask the tokenizer worker to tokenize or detokenize (``/tokenize``, ``/detokenize``)."""
        if self.unavailable is not None:
            raise APIError(503, self.unavailable)
        query.qid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._text_waiters[query.qid] = fut
        self.to_tokenizer.send(encode(query))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise APIError(503, "the tokenizer did not answer") from None
        finally:
            self._text_waiters.pop(query.qid, None)

    # -- the reader -------------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            data = await self.inbox.recv(copy=False)
            try:
                msg = self.decoder.decode(data.buffer)
            except msgspec.DecodeError:
                logger.exception("undecodable message from a worker")
                continue
            if isinstance(msg, DetokOutputs):
                for out in msg.outputs:
                    gen = self.generations.get(out.rid)
                    if gen is not None:
                        gen._push(out)
                        if out.finish_reason is not None:
                            del self.generations[out.rid]
            elif isinstance(msg, RequestError):
                err = APIError(msg.status, msg.message, msg.param)
                for rid in msg.rids:
                    gen = self.generations.pop(rid, None)
                    if gen is not None:
                        gen.unfinished.discard(rid)
                        gen.fail(err)
            elif isinstance(msg, Heartbeat):
                self.last_beat = time.monotonic()
            elif isinstance(msg, TextAnswer):
                fut = self._text_waiters.get(msg.qid)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            elif isinstance(msg, EngineStats):
                self.last_beat = time.monotonic()
                self.last_stats = msg
                waiters, self._stats_waiters = self._stats_waiters, []
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(msg)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self.ctx.destroy(linger=0)
