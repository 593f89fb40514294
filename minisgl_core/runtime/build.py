"""Assembling a scheduling engine process from an :class:`EngineConfig`, and turning prompts into requests.

Used in-process by the offline :class:`minisgl_core.LLM` and by the server's engine process alike.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import MappingProxyType
from typing import Any

from minisgl_core.checkpoint import locate_model
from minisgl_core.config import EngineConfig
from minisgl_core.contracts.cache import CacheContext, CachePolicy
from minisgl_core.contracts.grammar import GrammarBackend, GrammarContext
from minisgl_core.contracts.model import TPInfo
from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.contracts.request import Req, checked_token_ids
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.contracts.scheduler import SchedulerContext, SchedulingPolicy
from minisgl_core.engine import Engine
from minisgl_core.engine.tp_worker import free_address, join_group, spawn_followers
from minisgl_core.kv import PageAllocator
from minisgl_core.parallel import destroy_tp_group
from minisgl_core.plugins import CACHE, GRAMMAR, SCHEDULER, build, load_plugins, resolve_grammar
from minisgl_core.runtime.preflight import preflight
from minisgl_core.scheduling import KVManager, Scheduler
from minisgl_core.scheduling.grammar import GrammarManager
from minisgl_core.text import load_tokenizer

logger = logging.getLogger("minisgl")


@dataclass
class Runtime:
    """A ready engine process: the engine, its scheduler and the facts callers validate requests with."""

    config: EngineConfig
    model_dir: Path
    model_config: ModelConfig
    engine: Engine
    scheduler: Scheduler
    max_model_len: int
    followers: list[BaseProcess] = field(default_factory=list)
    """Spawned tensor-parallel ranks of this node (empty at TP 1)."""

    def shutdown(self) -> None:
        """Stop the other TP ranks and leave the group (idempotent; a no-op at TP 1)."""
        if not self.followers:
            return
        try:
            self.engine.stop_followers()
        finally:
            for proc in self.followers:
                proc.join(timeout=10)
                if proc.is_alive():
                    proc.terminate()
            self.followers = []
            destroy_tp_group()

    def make_request(self, prompt_ids: Sequence[int], params: SamplingParams, user_data: Any = None) -> Req:
        """Validate a prompt and wrap it in a :class:`Req` (``ValueError`` for bad input)."""
        if len(prompt_ids) == 0:
            raise ValueError("prompt is empty")
        prompt_ids = checked_token_ids(prompt_ids, self.model_config.vocab_size)
        if len(prompt_ids) >= self.max_model_len:
            raise ValueError(
                f"prompt has {len(prompt_ids)} tokens; the context holds {self.max_model_len} "
                "(prompt plus at least one generated token)"
            )
        params.validate()
        grammar = self.scheduler.grammar
        if params.constraint is not None:
            if grammar is None:
                raise ValueError(
                    f"{params.constraint.kind}: no grammar backend is selected (--grammar-backend; structured "
                    "outputs need one, e.g. pip install minisgl-xgrammar)"
                )
            grammar.submit(params.constraint)  # compiles on the worker thread meanwhile
        if params.logit_bias and max(params.logit_bias) >= self.model_config.vocab_size:
            raise ValueError(f"logit_bias token ids must be in [0, {self.model_config.vocab_size})")
        rid = next(_request_ids)
        return Req(
            rid=rid,
            prompt_ids=prompt_ids,
            params=params,
            max_new_tokens=min(params.max_tokens, self.max_model_len - len(prompt_ids)),
            eos_ids=frozenset(self.model_config.eos_token_ids),
            arrival=rid,
            arrival_time=self.scheduler.clock(),
            user_data=user_data,
        )


_request_ids = itertools.count()


def _grammar_manager(config: EngineConfig, model_dir: Path, model_config: ModelConfig, engine: Engine):  # noqa: ANN202
    """The structured-output manager, or None when no grammar backend is selected. The backend and the
    tokenizer it needs are created on the compile thread, at the first constrained request."""
    name = resolve_grammar(config.grammar_backend)
    if name is None:
        return None

    def create() -> GrammarBackend:
        tokenizer = load_tokenizer(config.tokenizer or model_dir)
        stops = tuple(model_config.eos_token_ids)
        ctx = GrammarContext(tokenizer, model_config.vocab_size, stops, MappingProxyType(config.grammar_options))
        return build(GRAMMAR, name, ctx, GrammarBackend)

    pin = engine.device.type == "cuda"
    return GrammarManager(create, model_config.vocab_size, config.max_running_requests + 1, pin)


def prepare_model(config: EngineConfig) -> tuple[Path, ModelConfig]:
    """Find the model's config (downloading no weights yet), check every selection against it
    (:func:`preflight`), then fetch the weights if they are needed; returns the model folder and its facts."""
    load_plugins()
    need_weights = config.load_format != "dummy"
    model_dir = locate_model(config.model, need_weights=False, revision=config.revision)
    model_config = ModelConfig.from_dir(model_dir)
    preflight(config, model_config)
    if need_weights:
        model_dir = locate_model(config.model, need_weights=True, revision=config.revision)
    return model_dir, model_config


def build_runtime(config: EngineConfig) -> Runtime:
    """Check the settings, load the model and its weights, size the KV cache and create the scheduler.

    With ``config.tp > 1`` this process becomes TP rank 0 and spawns the node's other ranks first.
    """
    model_dir, model_config = prepare_model(config)
    followers: list[BaseProcess] = []
    tp = TPInfo()
    if config.tp > 1:
        if config.node_rank != 0:
            raise ValueError("only node 0 schedules; run other nodes with `minisgl serve --node-rank N`")
        init_addr = config.dist_init_addr or free_address()
        followers = spawn_followers(config, init_addr)
        try:
            tp = join_group(config, 0, init_addr)
        except BaseException:
            for proc in followers:
                proc.terminate()
            raise
    engine = Engine(config, model_dir, model_config, tp)
    engine.start()
    allocator = PageAllocator(engine.num_pages, config.page_size)
    capacity = allocator.capacity_pages * config.page_size
    max_model_len = engine.max_model_len
    if capacity < max_model_len:
        logger.warning(
            "the KV cache holds %d tokens, fewer than the context length %d: requests are capped at %d tokens",
            capacity, max_model_len, capacity,
        )  # fmt: skip
        max_model_len = capacity
    cache_ctx = CacheContext(config.page_size, engine.num_pages, engine.device, MappingProxyType(config.cache_options))
    cache = build(CACHE, config.cache, cache_ctx, CachePolicy)
    kv = KVManager(allocator, engine.page_table, cache, config.page_size)
    scheduler_ctx = SchedulerContext(
        max_running_requests=config.max_running_requests,
        max_prefill_tokens=config.max_prefill_tokens,
        page_size=config.page_size,
        kv_capacity_tokens=capacity,
        options=MappingProxyType(config.scheduler_options),
    )
    policy = build(SCHEDULER, config.scheduler, scheduler_ctx, SchedulingPolicy)
    scheduler = Scheduler(
        engine, kv, policy, overlap=not config.disable_overlap, clock=scheduler_ctx.clock, mixed=config.mixed_chunk,
        grammar=_grammar_manager(config, model_dir, model_config, engine),
    )  # fmt: skip
    return Runtime(config, model_dir, model_config, engine, scheduler, max_model_len, followers)
