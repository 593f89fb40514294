"""The core's step loop (:class:`Scheduler`: admit, plan, run, read one step late) and its KV mechanics
(:class:`KVManager`). The *decisions* belong to the scheduling policy (``minisgl_core.contracts``)."""

from minisgl_core.scheduling.kv_manager import KVManager
from minisgl_core.scheduling.scheduler import ReqUpdate, Scheduler

__all__ = ["KVManager", "ReqUpdate", "Scheduler"]
