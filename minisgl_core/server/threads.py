"""CPU thread counts of the server's processes.

By default torch gives every process one intra-op thread per core, so on a CPU machine the server's four
processes fight over the cores. Contract: when the user chose a count (``OMP_NUM_THREADS`` or
``MKL_NUM_THREADS`` set, which torch reads) nothing here changes it. Otherwise the processes that do no
tensor math use one torch thread (only if they imported torch), and a CPU engine uses every available core
but one, split among the tensor-parallel ranks of its node. GPU engines keep torch's default.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables through which the user sets torch's intra-op thread count."""

logger = logging.getLogger("minisgl.engine")


def user_thread_setting(env: Mapping[str, str]) -> str | None:
    """``NAME=VALUE`` of the first thread variable set in ``env``; ``None`` when the user chose no count."""
    for name in THREAD_VARS:
        if env.get(name):
            return f"{name}={env[name]}"
    return None


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the platform reports it, else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cpu_engine_threads(env: Mapping[str, str], cores: int, ranks: int = 1) -> tuple[int | None, str]:
    """Threads for each of a CPU engine's ``ranks`` on this node, and why. ``None`` means: leave torch's
    count alone (the user chose it); otherwise every core but one, split evenly among the ranks, at least 1."""
    chosen = user_thread_setting(env)
    if chosen is not None:
        return None, f"{chosen} is set"
    why = f"{cores} cores available, one left to the server's other processes"
    if ranks > 1:
        why += f", split among {ranks} tensor-parallel ranks"
    return max(1, (cores - 1) // ranks), why


def use_one_torch_thread() -> None:
    """In a process that does no tensor math: one torch thread, unless the user chose a count. Imports
    nothing: a process that has not imported torch is left as it is."""
    torch = sys.modules.get("torch")
    if torch is not None and user_thread_setting(os.environ) is None:
        torch.set_num_threads(1)


def set_cpu_engine_threads(ranks: int) -> None:
    """In a CPU engine process, before it spawns its other tensor-parallel ranks: set torch's thread count
    (also in ``OMP_NUM_THREADS``, which those ranks inherit) unless the user chose it, and log it."""
    import torch

    threads, why = cpu_engine_threads(os.environ, available_cores(), ranks)
    if threads is not None:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
    logger.info("torch CPU threads per engine rank: %d (%s)", torch.get_num_threads(), why)
