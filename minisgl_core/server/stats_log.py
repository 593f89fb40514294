"""The engine's periodic status line while it is busy: throughput, queues, KV usage, prefix-cache hits, and
where the step time went (prefill, mixed and decode steps: how many, their mean time, tokens per step)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from minisgl_core.server.messages import EngineStats

logger = logging.getLogger("minisgl.engine")


class StatsLogger:
    """Logs at most once every ``interval`` seconds (``interval <= 0`` disables), with rates over the
    interval since the previous line."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.last_time = clock()
        self.last: EngineStats | None = None

    def start(self, stats: EngineStats) -> None:
        """The engine became busy. After an idle stretch of a whole interval or more the next line measures
        from now (its rates are not diluted by the idle time); after a shorter pause the interval goes on, so
        a lightly loaded server that idles between requests still logs once per interval."""
        now = self.clock()
        if self.last is None or now - self.last_time >= self.interval:
            self.last, self.last_time = stats, now

    def due(self) -> bool:
        """True when logging is on and the interval has passed since the previous line."""
        return self.interval > 0 and self.clock() - self.last_time >= self.interval

    def log(self, stats: EngineStats) -> str:
        """Log (and return) one status line."""
        now = self.clock()
        line = self.format(stats, now - self.last_time)
        self.last, self.last_time = stats, now
        logger.info(line)
        return line

    def format(self, s: EngineStats, elapsed: float) -> str:
        prev = self.last
        gen = s.generation_tokens - (prev.generation_tokens if prev else 0)
        prompt = s.prompt_tokens - (prev.prompt_tokens if prev else 0)
        hit = s.cached_prompt_tokens - (prev.cached_prompt_tokens if prev else 0)
        elapsed = max(elapsed, 1e-6)
        kv = (s.kv_pages_used / s.kv_pages_total * 100) if s.kv_pages_total else 0.0
        hit_rate = (hit / prompt * 100) if prompt else 0.0
        return (
            f"gen throughput {gen / elapsed:.1f} tok/s, prompt {prompt / elapsed:.1f} tok/s, "
            f"running {s.num_running}, waiting {s.num_waiting}, "
            f"KV used {kv:.1f}% ({s.kv_pages_used}/{s.kv_pages_total} pages, {s.kv_pages_cached} cached), "
            f"prefix-cache hit rate {hit_rate:.1f}%, steps: {self._steps(s, prev)}"
        )

    @staticmethod
    def _steps(s: EngineStats, prev: EngineStats | None) -> str:
        """``prefill 3 x 18.2 ms (2048 tok), mixed ..., decode ...`` over the interval (kinds that ran)."""
        parts = []
        for kind, (steps, tokens, seconds) in s.steps.items():
            before = prev.steps.get(kind, (0, 0, 0.0)) if prev else (0, 0, 0.0)
            n, tok, sec = steps - before[0], tokens - before[1], seconds - before[2]
            if n:
                parts.append(f"{kind} {n} x {sec / n * 1e3:.1f} ms ({tok / n:.0f} tok)")
        return ", ".join(parts) or "none"
