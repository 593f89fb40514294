"""Prometheus metrics of the API server (``GET /metrics``), in a registry of their own.

Latencies and token counters are observed in the API server as outputs arrive; queue and KV-cache gauges
come from the engine's latest :class:`EngineStats` snapshot. KV pages: ``used`` are held by requests
(including cached prefixes they lock), ``cached`` by the prefix cache, ``free`` by nobody; when no request
runs, ``used`` is 0.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minisgl_core.server.messages import EngineStats, RequestOutput

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)


class _EngineCollector:
    """Exposes the latest engine snapshot."""

    def __init__(self) -> None:
        self.stats: EngineStats | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        if s is None:
            return
        gauges = {
            "minisgl_num_requests_running": ("requests running in the engine", s.num_running),
            "minisgl_num_requests_waiting": ("requests waiting for admission", s.num_waiting),
            "minisgl_kv_pages_used": ("KV pages held by requests", s.kv_pages_used),
            "minisgl_kv_pages_cached": ("KV pages held by the prefix cache", s.kv_pages_cached),
            "minisgl_kv_pages_free": ("free KV pages", s.kv_pages_free),
            "minisgl_kv_pages_total": ("KV pages in the pool", s.kv_pages_total),
            "minisgl_kv_cache_usage_ratio": (
                "share of KV pages held by requests",
                s.kv_pages_used / s.kv_pages_total if s.kv_pages_total else 0.0,
            ),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(name, doc, value=value)
        counters = {
            "minisgl_prefix_cache_hit_tokens": ("prompt tokens served from the prefix cache", s.cached_prompt_tokens),
            "minisgl_prefix_cache_queried_tokens": ("prompt tokens of finished requests", s.prompt_tokens),
            "minisgl_num_retractions": ("requests retracted under KV-memory pressure", s.num_retractions),
            "minisgl_num_aborted_requests": ("requests aborted (client gone, stop string)", s.num_aborted),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(name, doc, value=value)


class Metrics:
    """The server's metric objects; :meth:`on_output` is called for every output of every request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ttft = Histogram(
            "minisgl_time_to_first_token_seconds", "time to first token", buckets=TTFT_BUCKETS, registry=r
        )
        self.itl = Histogram(
            "minisgl_inter_token_latency_seconds", "time between tokens", buckets=LATENCY_BUCKETS, registry=r
        )
        self.e2e = Histogram("minisgl_e2e_request_latency_seconds", "request latency", buckets=TTFT_BUCKETS, registry=r)
        self.prompt_tokens = Counter("minisgl_prompt_tokens", "prompt tokens of finished requests", registry=r)
        self.generation_tokens = Counter("minisgl_generation_tokens", "generated tokens", registry=r)
        self.requests = Counter("minisgl_requests", "finished requests by finish reason", ["finish_reason"], registry=r)
        self.api_pending = Gauge(
            "minisgl_api_pending_requests", "engine requests the API server waits on (registered rids)", registry=r
        )
        self._engine = _EngineCollector()
        r.register(self._engine)  # type: ignore[arg-type]

    def on_output(self, start: float, last: float, out: RequestOutput) -> float:
        """Observe one output of a request that started at ``start`` and last produced tokens at ``last``
        (0 before its first token; ``time.monotonic`` seconds); returns the new ``last``."""
        now = time.monotonic()
        n = len(out.token_ids)
        if n:
            if last == 0.0:
                self.ttft.observe(now - start)
            else:
                self.itl.observe((now - last) / n)
            last = now
            self.generation_tokens.inc(n)
        if out.finish_reason is not None:
            self.prompt_tokens.inc(out.prompt_tokens)
            self.requests.labels(out.finish_reason).inc()
            self.e2e.observe(now - start)
        return last

    def render(self, stats: EngineStats | None) -> bytes:
        """The Prometheus text exposition, with the engine gauges from ``stats``."""
        if stats is not None:
            self._engine.stats = stats
        return generate_latest(self.registry)
