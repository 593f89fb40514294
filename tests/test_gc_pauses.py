"""Garbage collection in the server's processes: the start-up heap is frozen out of collection, and
``--gc-warning-threshold-secs`` names every process whose collection held it longer."""

from __future__ import annotations

import gc
import logging
import re

import httpx
import pytest
from server_harness import ServerProcess

from minisgl_core.server.gc_pauses import PauseWatch, freeze_startup_heap, prepare_server_process


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_pause_longer_than_the_threshold_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    watch = PauseWatch("engine", threshold_s=0.02, clock=clock)
    with caplog.at_level(logging.WARNING, logger="minisgl.gc"):
        watch("start", {"generation": 0})
        clock.now += 0.005
        watch("stop", {"generation": 0, "collected": 3})
        watch("start", {"generation": 2})
        clock.now += 0.125
        watch("stop", {"generation": 2, "collected": 7})
    assert [r.getMessage() for r in caplog.records] == [
        "engine process: garbage collection of generation 2 took 125.0 ms (7 objects collected); "
        "requests in flight waited for it"
    ]
    assert watch.count == 2 and watch.longest_s == pytest.approx(0.125)
    watch("stop", {"generation": 1})  # a stop without its start (installed mid-collection) is ignored
    assert watch.count == 2


def test_an_installed_watch_times_real_collections_until_removed() -> None:
    watch = PauseWatch("api", threshold_s=60.0).install()
    try:
        gc.collect()
        assert watch.count >= 1 and watch in gc.callbacks
    finally:
        watch.remove()
    seen = watch.count
    gc.collect()
    assert watch.count == seen and watch not in gc.callbacks
    try:
        assert prepare_server_process("api", 0.0) is None  # threshold 0: freeze only, no watch
    finally:
        gc.unfreeze()


def test_freezing_leaves_nothing_for_a_full_collection_to_walk() -> None:
    survivors = [{"request": i} for i in range(20_000)]
    try:
        frozen = freeze_startup_heap()
        assert frozen >= len(survivors)
        assert len(gc.get_objects()) < 1_000  # what a full collection walks now (it walked them all before)
    finally:
        gc.unfreeze()


def test_every_server_process_freezes_its_heap_and_watches_its_collections(tiny_qwen3, tmp_path) -> None:  # noqa: ANN001
    """Each of the four processes says so once it is ready (when collections happen while serving is up to
    Python: the watch's own reporting is proven above)."""
    srv = ServerProcess(tiny_qwen3.path, tmp_path / "server.log", "--gc-warning-threshold-secs", "0.05")
    try:
        body = {"prompt": "garbage", "max_tokens": 8, "temperature": 0.0}
        assert httpx.post(srv.url + "/v1/completions", json=body, timeout=60).status_code == 200
    finally:
        srv.stop()
    log = srv.log()
    for process in ("api", "engine", "tokenizer", "detokenizer"):
        assert re.search(
            process + r" process: \d+ start-up objects frozen out of garbage collection; collections of 50.0 ms", log
        ), process
