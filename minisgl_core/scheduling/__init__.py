"""The core's step loop (:class:`Scheduler`: admit, plan, run, read one step late) and its KV mechanics
(:class:`KVManager`). The *decisions* belong to the scheduling policy (``minisgl_core.contracts``)."""

from minisgl_core.scheduling.kv_manager import KVManager
from minisgl_core.scheduling.scheduler import Scheduler
from minisgl_core.scheduling.step_stats import StepStats
from minisgl_core.scheduling.updates import ReqUpdate

__all__ = ["KVManager", "ReqUpdate", "Scheduler", "StepStats"]
