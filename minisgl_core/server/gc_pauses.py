"""Python's garbage collector in the server's processes: start-up objects frozen out of its scans, and long
collections reported.

A full collection walks every tracked object of a process; in an engine process that holds a model, a radix
tree and hundreds of requests it can hold the step loop for tens of milliseconds, and every request in flight
waits (a time-to-first-token outlier that comes back at the same point of a replayed trace). vLLM freezes
its engine's start-up heap the same way; SGLang names the warning ``--gc-warning-threshold-secs``."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger("minisgl.gc")


def freeze_startup_heap() -> int:
    """Collect once, then move every object alive now to the permanent generation (:func:`gc.freeze`), so
    later collections never walk what start-up built (modules, model, tokenizer, captured graphs). Each server
    process calls it once it is ready, just before it reports ready; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class PauseWatch:
    """Times every collection of this process (through :data:`gc.callbacks`) and logs a warning for each one
    longer than ``threshold_s``; ``longest_s`` and ``count`` keep what was seen (for tests and reports)."""

    def __init__(self, process: str, threshold_s: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.process = process
        self.threshold_s = threshold_s
        self.clock = clock
        self.longest_s = 0.0
        self.count = 0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = self.clock()
            return
        if self._started is None:
            return
        took = self.clock() - self._started
        self._started = None
        self.count += 1
        self.longest_s = max(self.longest_s, took)
        if took >= self.threshold_s:
            logger.warning(
                "%s process: garbage collection of generation %d took %.1f ms (%d objects collected); "
                "requests in flight waited for it", self.process, info.get("generation", -1), took * 1e3,
                info.get("collected", 0),
            )  # fmt: skip

    def install(self) -> PauseWatch:
        gc.callbacks.append(self)
        return self

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def prepare_server_process(process: str, warning_threshold_s: float) -> PauseWatch | None:
    """Once a server process is ready: freeze its start-up heap and, when ``warning_threshold_s`` > 0, watch
    its collections (returns the watch, or None)."""
    frozen = freeze_startup_heap()
    if warning_threshold_s <= 0:
        return None
    logger.info(
        "%s process: %d start-up objects frozen out of garbage collection; collections of %.1f ms or more are "
        "reported", process, frozen, warning_threshold_s * 1e3,
    )  # fmt: skip
    return PauseWatch(process, warning_threshold_s).install()
