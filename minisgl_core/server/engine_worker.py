"""The engine process: owns the model and the scheduler, and turns requests into batched token updates.

Loop contract: while the scheduler has work, waiting messages are drained without blocking between steps,
and each step's updates leave in one :class:`EngineOutputs` message to the detokenizer; when idle the
process blocks on its socket. Aborted requests are released at once and reported with finish reason
``abort`` so the detokenizer forgets them.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

import zmq

from minisgl_core.config import EngineConfig
from minisgl_core.contracts.model import TPInfo
from minisgl_core.contracts.request import FinishReason, Req
from minisgl_core.engine.tp_worker import local_ranks
from minisgl_core.parallel import resolve_device
from minisgl_core.runtime import Runtime, build_runtime
from minisgl_core.server.gc_pauses import prepare_server_process
from minisgl_core.server.ipc import Addresses, Receiver, Sender, fail_start_up, setup_worker
from minisgl_core.server.messages import (
    TO_ENGINE,
    Abort,
    DetokRequest,
    EngineInfo,
    EngineOutputs,
    EngineRequest,
    EngineStats,
    Heartbeat,
    NewRequests,
    RequestError,
    StatsRequest,
    TokenUpdate,
    WorkerReady,
)
from minisgl_core.server.stats_log import StatsLogger
from minisgl_core.server.threads import set_cpu_engine_threads

logger = logging.getLogger("minisgl.engine")


class EngineWorker:
    """The scheduling loop of the engine process (rank 0)."""

    def __init__(
        self, runtime: Runtime, ctx: zmq.Context, addrs: Addresses, log_interval: float, beat_interval: float = 1.0
    ) -> None:
        self.runtime = runtime
        self.scheduler = runtime.scheduler
        self.inbox = Receiver(ctx, addrs.engine, TO_ENGINE)
        self.to_detok = Sender(ctx, addrs.detokenizer)
        self.to_api = Sender(ctx, addrs.api)
        self.reqs: dict[str, Req] = {}
        self.new: list[DetokRequest] = []
        self.updates: list[TokenUpdate] = []
        self.first_token: dict[str, float] = {}
        """When each running request's first token was read (the scheduler's clock)."""
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0
        self.generation_tokens = 0
        self.num_aborted = 0
        self.held: dict[str, DetokRequest] = {}
        """Constrained requests not announced yet: their grammar is compiling."""
        self.stats_log = StatsLogger(log_interval)
        self.beat_interval = beat_interval
        self.last_beat = 0.0

    def run(self) -> None:
        scheduler = self.scheduler
        while True:
            busy = scheduler.has_work()
            for msg in self.inbox.recv_all(block=not busy, timeout=self.beat_interval):
                self._handle(msg)
            now = time.monotonic()
            if now - self.last_beat >= self.beat_interval:  # the API server's liveness check (--engine-timeout)
                self.last_beat = now
                self.to_api.send(Heartbeat())
            if not busy and scheduler.has_work():
                self.stats_log.start(self.stats())  # after a long idle stretch, rates start from now
            self._flush()  # accepted requests are announced before the step that prefills them runs
            if scheduler.has_work():
                for u in scheduler.step():
                    self._add_update(u.req, u.new_token_ids, u.finish_reason, u.logprobs, u.prompt_logprobs)
            if self.held:
                self._release_held()
            self._flush()
            if busy and self.stats_log.due():
                self.stats_log.log(self.stats())

    # -- messages ---------------------------------------------------------------------------------------

    def _handle(self, msg: Any) -> None:
        if isinstance(msg, NewRequests):
            for r in msg.reqs:
                self._add_request(r)
        elif isinstance(msg, Abort):
            for rid in msg.rids:
                req = self.reqs.get(rid)
                if req is not None:
                    self.num_aborted += 1
                    self.scheduler.abort(req)
                    if self.held.pop(rid, None) is not None:  # never announced: nothing downstream to end
                        self.reqs.pop(rid, None)
                        continue
                    self._add_update(req, [], FinishReason.ABORT, None)
        elif isinstance(msg, StatsRequest):
            self.to_api.send(self.stats())

    def _add_request(self, r: EngineRequest) -> None:
        try:
            req = self.runtime.make_request(r.prompt_ids, r.params, user_data=r.rid)
        except ValueError as exc:
            param = "prompt" if "prompt" in str(exc) else None
            self.to_api.send(RequestError([r.rid], str(exc), 400, param))
            return
        p = r.params
        echo = r.prompt_ids if r.echo else None
        announce = DetokRequest(
            r.rid,
            len(r.prompt_ids),
            p.stop,
            p.skip_special_tokens,
            p.logprobs is not None,
            p.stop_regex,
            echo,
            p.min_tokens,
        )
        if p.constraint is not None and req.max_new_tokens > 0:  # accepted once its grammar compiled
            self.held[r.rid] = announce
        else:
            self.new.append(announce)
        self.reqs[r.rid] = req
        if req.max_new_tokens == 0:
            req.finish_reason = FinishReason.LENGTH
            self._add_update(req, [], FinishReason.LENGTH, None)
        else:
            self.scheduler.add(req)

    def _release_held(self) -> None:
        """Announce the constrained requests whose grammar compiled; reject those whose grammar failed."""
        for req, message, field in self.scheduler.grammar_errors:
            self.held.pop(req.user_data, None)
            self.reqs.pop(req.user_data, None)
            self.to_api.send(RequestError([req.user_data], message, 400, field))
        self.scheduler.grammar_errors.clear()
        compiling = {id(r) for r in self.scheduler.compiling}
        for rid in [rid for rid in self.held if id(self.reqs[rid]) not in compiling]:
            self.new.append(self.held.pop(rid))

    def _add_update(
        self, req: Req, tokens: list[int], reason: FinishReason | None, logprobs: Any, prompt: Any = None
    ) -> None:
        lps = None
        if logprobs is not None:
            lps = [(lp.token_id, float(lp.logprob), [(int(t), float(v)) for t, v in lp.top]) for lp in logprobs]
        self.generation_tokens += len(tokens)
        if tokens and req.user_data not in self.first_token:
            self.first_token[req.user_data] = self.scheduler.now
        update = TokenUpdate(req.user_data, tokens, None if reason is None else reason.value, lps)
        if prompt is not None:  # the first prompt token has nothing before it: NaN
            first = [(req.prompt_ids[0], math.nan, [], 0)]
            update.prompt_logprobs = first + [(lp.token_id, lp.logprob, lp.top, lp.rank) for lp in prompt]
        if reason is not None:
            update.cached_tokens = req.num_cached_tokens
            update.timing = self._timing(req)
            self.prompt_tokens += len(req.prompt_ids)
            self.cached_prompt_tokens += req.num_cached_tokens
            self.reqs.pop(req.user_data, None)
        self.updates.append(update)

    def _timing(self, req: Req) -> tuple[float, float, float]:
        """Seconds queued, prefilling (admission to first token) and decoding (first token to now)."""
        now = self.scheduler.now
        first = self.first_token.pop(req.user_data, now)
        admitted = req.admit_time or now
        return max(admitted - req.arrival_time, 0.0), max(first - admitted, 0.0), max(now - first, 0.0)

    def _flush(self) -> None:
        if self.new or self.updates:
            self.to_detok.send(EngineOutputs(self.new, self.updates))
            self.new, self.updates = [], []

    # -- stats ------------------------------------------------------------------------------------------

    def stats(self) -> EngineStats:
        s = self.scheduler
        kv = s.kv
        ps = kv.page_size
        total = kv.allocator.capacity_pages
        free = kv.allocator.num_free_pages
        evictable = kv.cache.evictable_tokens // ps
        return EngineStats(
            num_running=len(s.running),
            num_waiting=len(s.waiting),
            kv_pages_total=total,
            kv_pages_free=free,
            kv_pages_cached=kv.cache.cached_tokens // ps,
            kv_pages_used=total - free - evictable,
            prompt_tokens=self.prompt_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            generation_tokens=self.generation_tokens,
            num_retractions=s.num_retractions,
            num_aborted=self.num_aborted,
            steps=s.step_stats.snapshot(),
        )


def run_engine_worker(
    config: EngineConfig,
    addrs: Addresses,
    log_level: str,
    log_interval: float,
    beat_interval: float,
    gc_warning_threshold_s: float,
) -> None:
    """Process entry point: set a CPU engine's thread count, build the runtime, freeze the start-up heap out of
    garbage collection, report ready (or the error) to the API server, then serve."""
    setup_worker("engine", log_level)
    ctx = zmq.Context()
    to_api = Sender(ctx, addrs.api)
    try:
        if resolve_device(config.device, TPInfo()).type == "cpu":
            set_cpu_engine_threads(len(local_ranks(config)))
        runtime = build_runtime(config)
        worker = EngineWorker(runtime, ctx, addrs, log_interval, beat_interval)
    except Exception as exc:  # noqa: BLE001 - reported to the launcher, which exits with the message
        fail_start_up(to_api, "engine", exc)
    info = EngineInfo(runtime.max_model_len, runtime.model_config.vocab_size)
    prepare_server_process("engine", gc_warning_threshold_s)
    to_api.send(WorkerReady("engine", os.getpid(), info))
    worker.run()
