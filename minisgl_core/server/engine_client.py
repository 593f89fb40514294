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
from collections.abc import Callable

import msgspec
import zmq
import zmq.asyncio

from minisgl_core.server.errors import APIError
from minisgl_core.server.generation import Generation
from minisgl_core.server.ipc import Addresses, pull_socket, push_socket
from minisgl_core.server.messages import (
    TO_API,
    Abort,
    DetokOutputs,
    EngineInfo,
    EngineStats,
    Heartbeat,
    RequestError,
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
        gen = Generation(rids, prompt_index, self.metrics, self._forget)
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
                        gen.push(out)
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
