"""Tensor-parallel ranks other than 0: spawned processes that build their shard of the engine and run the
plans rank 0 broadcasts.

Rank 0 (the process that schedules: the offline ``LLM`` or the server's engine worker) spawns the other
local ranks with :func:`spawn_followers`; on a node other than 0, :func:`run_node` runs all local ranks.
Every rank joins one ``torch.distributed`` group through ``dist_init_addr`` (HOST:PORT of rank 0).
"""

from __future__ import annotations

import multiprocessing
import socket
from multiprocessing.process import BaseProcess

import torch

from minisgl_core.checkpoint import locate_model
from minisgl_core.config import EngineConfig
from minisgl_core.contracts.model import TPInfo
from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.engine.engine import Engine
from minisgl_core.parallel import destroy_tp_group, die_with_parent, get_tp, init_tp_group, resolve_device
from minisgl_core.plugins import load_plugins


def free_address() -> str:
    """``127.0.0.1:PORT`` with a port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def local_ranks(config: EngineConfig) -> range:
    per_node = config.tp // config.nnodes
    return range(config.node_rank * per_node, (config.node_rank + 1) * per_node)


def join_group(config: EngineConfig, rank: int, init_addr: str) -> TPInfo:
    """Pick this rank's device and join the TP group."""
    device = resolve_device(config.device, TPInfo(rank, config.tp))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return init_tp_group(rank, config.tp, init_addr, device.type)


def follower_main(config: EngineConfig, rank: int, init_addr: str) -> None:
    """Entry point of a spawned rank: build the engine shard, warm it up like rank 0, then follow."""
    die_with_parent()
    load_plugins()
    join_group(config, rank, init_addr)
    model_dir = locate_model(config.model, need_weights=config.load_format != "dummy", revision=config.revision)
    engine = Engine(config, model_dir, ModelConfig.from_dir(model_dir), get_tp())
    engine.start()
    try:
        engine.follow()
    finally:
        destroy_tp_group()


def spawn_followers(config: EngineConfig, init_addr: str, skip_rank0: bool = True) -> list[BaseProcess]:
    """Start this node's ranks (without rank 0 when it is this process) as daemon processes."""
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for rank in local_ranks(config):
        if rank == 0 and skip_rank0:
            continue
        proc = ctx.Process(target=follower_main, args=(config, rank, init_addr), daemon=True, name=f"minisgl-tp{rank}")
        proc.start()
        procs.append(proc)
    return procs


def run_node(config: EngineConfig) -> int:
    """A node other than 0 of a multi-node group: run its ranks until rank 0 shuts the group down."""
    if not config.dist_init_addr:
        raise ValueError("nodes other than 0 need --dist-init-addr (HOST:PORT of node 0)")
    procs = spawn_followers(config, config.dist_init_addr, skip_rank0=False)
    for proc in procs:
        proc.join()
    return max((proc.exitcode or 0 for proc in procs), default=0)
