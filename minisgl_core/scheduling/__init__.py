"""Scheduling: the policy extension point and the core's step loop."""

from minisgl_core.scheduling.policy import SchedulerContext, SchedulerView, SchedulingPolicy

__all__ = ["SchedulerContext", "SchedulerView", "SchedulingPolicy"]
