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

from minisgl_core.cache.base import CacheContext, CachePolicy
from minisgl_core.config import EngineConfig
from minisgl_core.demo import DEMO_NAME, demo_dir
from minisgl_core.distributed import TPInfo, destroy_tp_group
from minisgl_core.engine.engine import Engine
from minisgl_core.engine.tp_worker import free_address, join_group, spawn_followers
from minisgl_core.kv import PageAllocator
from minisgl_core.model_config import ModelConfig
from minisgl_core.plugins import load_plugins
from minisgl_core.registry import ATTENTION, CACHE, MODEL, REGISTRIES, SCHEDULER
from minisgl_core.request import Req, checked_token_ids
from minisgl_core.sampling_params import SamplingParams
from minisgl_core.scheduling.kv_manager import KVManager
from minisgl_core.scheduling.policy import SchedulerContext, SchedulingPolicy
from minisgl_core.scheduling.scheduler import Scheduler
from minisgl_core.weights import resolve_model_dir

logger = logging.getLogger("minisgl")


def locate_model(config: EngineConfig) -> Path:
    """The local folder of ``config.model`` (``demo`` is built on first use; hub ids are downloaded)."""
    if config.model == DEMO_NAME:
        return demo_dir()
    return resolve_model_dir(config.model, need_weights=config.load_format != "dummy", revision=config.revision)


def check_names(config: EngineConfig, model_config: ModelConfig) -> None:
    """Fail early, with the list of what is available, when a plugin-provided name is unknown."""
    load_plugins()
    REGISTRIES[CACHE].get(config.cache)
    REGISTRIES[SCHEDULER].get(config.scheduler)
    REGISTRIES[MODEL].get(model_config.architecture)
    for name in config.attention_names:
        if name != "auto":
            REGISTRIES[ATTENTION].get(name)


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
        rid = next(_request_ids)
        return Req(
            rid=rid,
            prompt_ids=prompt_ids,
            params=params,
            max_new_tokens=min(params.max_tokens, self.max_model_len - len(prompt_ids)),
            eos_ids=frozenset(self.model_config.eos_token_ids),
            arrival=rid,
            user_data=user_data,
        )


_request_ids = itertools.count()


def start_engine(engine: Engine) -> None:
    """Warm kernels up and capture CUDA graphs (every TP rank does the same, in the same order)."""
    if engine.device.type == "cuda":
        engine.warmup()
        engine.capture_cuda_graphs()


def build_runtime(config: EngineConfig) -> Runtime:
    """Load plugins, the model and its weights, size the KV cache and create the scheduler.

    With ``config.tp > 1`` this process becomes TP rank 0 and spawns the node's other ranks first.
    """
    load_plugins()
    model_dir = locate_model(config)
    model_config = ModelConfig.from_dir(model_dir)
    check_names(config, model_config)
    if config.max_model_len and config.max_model_len > model_config.max_position_embeddings:
        raise ValueError(
            f"max_model_len {config.max_model_len} exceeds the model's context "
            f"({model_config.max_position_embeddings} positions)"
        )
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
    start_engine(engine)
    allocator = PageAllocator(engine.num_pages, config.page_size)
    capacity = allocator.capacity_pages * config.page_size
    max_model_len = engine.max_model_len
    if capacity < max_model_len:
        logger.warning(
            "the KV cache holds %d tokens, fewer than the context length %d: requests are capped at %d tokens",
            capacity, max_model_len, capacity,
        )  # fmt: skip
        max_model_len = capacity
    cache = (
        REGISTRIES[CACHE]
        .get(config.cache)
        .create(
            CacheContext(
                page_size=config.page_size,
                num_pages=engine.num_pages,
                device=engine.device,
                options=MappingProxyType(config.cache_options),
            )
        )
    )
    if not isinstance(cache, CachePolicy):
        raise TypeError(f"cache policy {config.cache!r} factory returned {type(cache).__name__}, not a CachePolicy")
    kv = KVManager(allocator, engine.page_table, cache, config.page_size)
    policy = (
        REGISTRIES[SCHEDULER]
        .get(config.scheduler)
        .create(
            SchedulerContext(
                max_running_requests=config.max_running_requests,
                max_prefill_tokens=config.max_prefill_tokens,
                page_size=config.page_size,
                kv_capacity_tokens=capacity,
                options=MappingProxyType(config.scheduler_options),
            )
        )
    )
    if not isinstance(policy, SchedulingPolicy):
        raise TypeError(
            f"scheduler {config.scheduler!r} factory returned {type(policy).__name__}, not a SchedulingPolicy"
        )
    overlap = not config.disable_overlap
    scheduler = Scheduler(engine, kv, policy, overlap=overlap)
    return Runtime(config, model_dir, model_config, engine, scheduler, max_model_len, followers)
