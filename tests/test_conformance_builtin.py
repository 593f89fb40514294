"""The core's own plugins run the same conformance suites as any third-party plugin."""

from __future__ import annotations

import torch

from minisgl_core.testing import AttentionBackendSuite, CachePolicySuite, SchedulerSuite


class TestTorchAttention(AttentionBackendSuite):
    backend = "torch"


class TestTorchAttentionCUDA(AttentionBackendSuite):
    backend = "torch"
    device = "cuda"
    dtype = torch.bfloat16


class TestRadixCache(CachePolicySuite):
    policy = "radix"


class TestNaiveCache(CachePolicySuite):
    policy = "naive"
    shares_prefixes = False


class TestFCFSScheduler(SchedulerSuite):
    scheduler = "fcfs"
    max_overtakes = 0  # first come, first admitted
    caches = ("radix", "naive")


class TestFCFSSchedulerCUDA(SchedulerSuite):
    scheduler = "fcfs"
    device = "cuda"
    max_overtakes = 0
