"""Prometheus metrics of the API server (``GET /metrics``), in a registry of their own; every series carries
a ``model_name`` label (the served model name), as vLLM's do.

Latencies and token counts are observed in the API server as outputs arrive; the queue, prefill and decode
times of a request are measured by the engine (its scheduler's clock) and arrive with its finish. Queue and
KV-cache gauges come from the engine's latest :class:`EngineStats` snapshot. KV pages: ``used`` are held
by requests (including cached prefixes they lock), ``cached`` by the prefix cache, ``free`` by nobody;
when no request runs, ``used`` is 0. docs/server.md maps each series to its vLLM and SGLang names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from minisgl_core.server.messages import EngineStats, RequestOutput

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0, 600.0)
TOKEN_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
LABEL = ["model_name"]


class _EngineCollector:
    """Exposes the latest engine snapshot."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
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
            family = GaugeMetricFamily(name, doc, labels=LABEL)
            family.add_metric([self.model_name], value)
            yield family
        counters = {
            "minisgl_prefix_cache_hit_tokens": ("prompt tokens served from the prefix cache", s.cached_prompt_tokens),
            "minisgl_prefix_cache_queried_tokens": ("prompt tokens of finished requests", s.prompt_tokens),
            "minisgl_num_retractions": ("requests retracted under KV-memory pressure", s.num_retractions),
            "minisgl_num_aborted_requests": ("requests aborted (client gone, stop string)", s.num_aborted),
        }
        for name, (doc, value) in counters.items():
            family = CounterMetricFamily(name, doc, labels=LABEL)
            family.add_metric([self.model_name], value)
            yield family


class Metrics:
    """The server's metric objects; :meth:`on_output` is called for every output of every request."""

    def __init__(self, model_name: str = "") -> None:
        self.registry = r = CollectorRegistry()
        m = [model_name]

        def histogram(name: str, doc: str, buckets: tuple) -> Histogram:
            return Histogram(name, doc, LABEL, buckets=buckets, registry=r).labels(*m)

        self.ttft = histogram("minisgl_time_to_first_token_seconds", "time to first token", TTFT_BUCKETS)
        self.itl = histogram("minisgl_inter_token_latency_seconds", "time between tokens", LATENCY_BUCKETS)
        self.e2e = histogram("minisgl_e2e_request_latency_seconds", "request latency", REQUEST_BUCKETS)
        self.queue = histogram("minisgl_request_queue_time_seconds", "time waiting for admission", REQUEST_BUCKETS)
        self.prefill = histogram(
            "minisgl_request_prefill_time_seconds", "admission to the first token", REQUEST_BUCKETS
        )
        self.decode = histogram("minisgl_request_decode_time_seconds", "first token to the finish", REQUEST_BUCKETS)
        self.prompt_hist = histogram("minisgl_request_prompt_tokens", "prompt tokens per request", TOKEN_BUCKETS)
        self.gen_hist = histogram("minisgl_request_generation_tokens", "generated tokens per request", TOKEN_BUCKETS)
        self.prompt_tokens = Counter(
            "minisgl_prompt_tokens", "prompt tokens of finished requests", LABEL, registry=r
        ).labels(*m)
        self.generation_tokens = Counter("minisgl_generation_tokens", "generated tokens", LABEL, registry=r).labels(*m)
        self.requests = Counter(
            "minisgl_requests", "finished requests by finish reason", ["finish_reason", *LABEL], registry=r
        )
        self.model_name = model_name
        self.api_pending = Gauge(
            "minisgl_api_pending_requests", "engine requests the API server waits on (registered rids)", LABEL,
            registry=r,
        ).labels(*m)  # fmt: skip
        self._engine = _EngineCollector(model_name)
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
            self.requests.labels(out.finish_reason, self.model_name).inc()
            self.e2e.observe(now - start)
            self.prompt_hist.observe(out.prompt_tokens)
            self.gen_hist.observe(out.completion_tokens)
            if out.timing is not None:
                for hist, seconds in zip((self.queue, self.prefill, self.decode), out.timing):
                    hist.observe(seconds)
        return last

    def render(self, stats: EngineStats | None) -> bytes:
        """The Prometheus text exposition, with the engine gauges from ``stats``."""
        if stats is not None:
            self._engine.stats = stats
        return generate_latest(self.registry)
