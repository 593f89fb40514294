"""Processes working together: the tensor-parallel group (rank, collectives, plan broadcast) and the
process helpers every spawned minisgl process uses."""

from minisgl_core.parallel.group import (
    all_gather_last_dim,
    all_reduce,
    broadcast_object,
    broadcast_tensor,
    destroy_tp_group,
    get_tp,
    init_tp_group,
    resolve_device,
    set_tp,
)
from minisgl_core.parallel.process import die_with_parent, stop_process_group

__all__ = [
    "all_gather_last_dim",
    "all_reduce",
    "broadcast_object",
    "broadcast_tensor",
    "destroy_tp_group",
    "die_with_parent",
    "get_tp",
    "init_tp_group",
    "resolve_device",
    "set_tp",
    "stop_process_group",
]
