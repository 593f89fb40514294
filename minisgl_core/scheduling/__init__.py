"""Scheduling: the policy extension point and the core's step loop."""

from minisgl_core.request import Req
from minisgl_core.scheduling.policy import SchedulerContext, SchedulerView, SchedulingPolicy

__all__ = ["Req", "SchedulerContext", "SchedulerView", "SchedulingPolicy"]
