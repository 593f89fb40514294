"""CPU thread defaults of the server's processes: the helpers that decide them, and a real CPU server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import server_harness
from server_harness import ServerProcess

from minisgl_core.server.threads import THREAD_VARS, available_cores, cpu_engine_threads, use_one_torch_thread


class FakeTorch:
    """Stands in for the ``torch`` module: records the thread count set."""

    def __init__(self) -> None:
        self.threads: int | None = None

    def set_num_threads(self, n: int) -> None:
        self.threads = n


@pytest.fixture
def no_thread_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_VARS:
        monkeypatch.delenv(name, raising=False)


def test_engine_uses_every_core_but_one() -> None:
    assert cpu_engine_threads({}, 8) == (7, "8 cores available, one left to the server's other processes")
    assert cpu_engine_threads({}, 2)[0] == 1
    assert cpu_engine_threads({}, 1)[0] == 1
    assert cpu_engine_threads({"OMP_NUM_THREADS": ""}, 4)[0] == 3  # empty = unset


def test_engine_threads_are_split_among_tp_ranks() -> None:
    threads, why = cpu_engine_threads({}, 9, ranks=2)
    assert threads == 4 and why.endswith("split among 2 tensor-parallel ranks")
    assert cpu_engine_threads({}, 2, ranks=2)[0] == 1


@pytest.mark.parametrize("name", THREAD_VARS)
def test_a_thread_count_the_user_set_is_left_alone(name: str) -> None:
    assert cpu_engine_threads({name: "3"}, 8, ranks=2) == (None, f"{name}=3 is set")


def test_available_cores_follow_the_affinity() -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    assert available_cores() == len(os.sched_getaffinity(0)) >= 1


def test_processes_without_tensor_math_use_one_torch_thread(monkeypatch, no_thread_vars) -> None:
    torch = FakeTorch()
    monkeypatch.setitem(sys.modules, "torch", torch)
    use_one_torch_thread()
    assert torch.threads == 1
    torch.threads = None
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    use_one_torch_thread()
    assert torch.threads is None


def test_processes_without_torch_do_not_import_it(monkeypatch, no_thread_vars) -> None:
    monkeypatch.delitem(sys.modules, "torch")
    use_one_torch_thread()
    assert "torch" not in sys.modules


def _serve(log: Path, omp_num_threads: str | None, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """``minisgl serve --model demo`` with OMP_NUM_THREADS as given (the harness would set it to 1)."""
    popen = subprocess.Popen

    def popen_with_threads(cmd: list[str], *, env: dict[str, str], **kw: object) -> subprocess.Popen:
        env = {k: v for k, v in env.items() if k not in THREAD_VARS}
        if omp_num_threads is not None:
            env["OMP_NUM_THREADS"] = omp_num_threads
        return popen(cmd, env=env, **kw)

    monkeypatch.setattr(server_harness.subprocess, "Popen", popen_with_threads)
    return ServerProcess(Path("demo"), log)


@pytest.mark.slow
@pytest.mark.parametrize("user_set", [False, True], ids=["default", "OMP_NUM_THREADS"])
def test_cpu_server_engine_logs_its_threads(tmp_path, monkeypatch, user_set: bool) -> None:
    omp = str(available_cores()) if user_set else None  # not the default count (torch caps it at the cores)
    threads, why = cpu_engine_threads({"OMP_NUM_THREADS": omp} if omp else {}, available_cores())
    server = _serve(tmp_path / "server.log", omp, monkeypatch)
    try:
        assert server.get("/health")[0] == 200
        expected = int(omp) if omp else threads
        assert f"engine: torch CPU threads per engine rank: {expected} ({why})" in server.log()
    finally:
        assert server.stop() == 0
