"""Plugin contract v2: register hooks traced through pluggy, built-in names guarded against impostors, the core
distribution's plugins kept under an allow-list, attention options, scheduler notifications and clock, and
plugin warnings reported once per command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minisgl_core import LLM, SamplingParams, hookimpl
from minisgl_core.builtin.naive_cache import NaiveCache
from minisgl_core.builtin.torch_attention import TorchAttention
from minisgl_core.contracts import AttentionContext, Req, SchedulerView, SchedulingPolicy
from minisgl_core.plugins import CACHE, PluginConflictError, lookup, register_plugin, unregister_plugin

GREEDY = SamplingParams(temperature=0.0, max_tokens=3, ignore_eos=True)


def run_minisgl(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minisgl_core", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        cwd=cwd,
    )


class Impostor:
    @hookimpl
    def minisgl_register_cache_policies(self, register):  # noqa: ANN001, ANN201
        register("radix", NaiveCache)


def test_a_plugin_registering_a_built_in_name_is_a_conflict(tiny_qwen3) -> None:
    name = register_plugin(Impostor(), name="impostor", distribution="minisgl-impostor")
    try:
        with pytest.raises(PluginConflictError, match=r"plugin 'builtin' \(minisgl-core\) and plugin 'impostor'"):
            lookup(CACHE, "radix")
        with pytest.raises(ValueError, match="'radix' is registered by more than one plugin"):
            LLM(str(tiny_qwen3.path), device="cpu", attention="torch", cache="radix")
    finally:
        unregister_plugin(name)
    assert lookup(CACHE, "radix").plugin == "builtin"  # the built-in is usable again


def test_impostor_entry_point_is_listed_as_a_conflict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    info = site / "minisgl_impostor-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: minisgl-impostor\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[minisgl]\nimpostor = impostor_plugin\n")
    (site / "impostor_plugin.py").write_text(
        textwrap.dedent("""
        from minisgl_core import hookimpl

        @hookimpl
        def minisgl_register_schedulers(register):
            register("fcfs", "minisgl_core.builtin.fcfs:create")
        """)
    )
    env = {"PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    listing = run_minisgl("plugins", env=env)
    assert "CONFLICT  scheduler 'fcfs' registered by: builtin (minisgl-core), impostor (minisgl-impostor)" in (
        listing.stdout
    )
    generate = run_minisgl("generate", "--model", "demo", "--device", "cpu", "--max-tokens", "2", env=env)
    assert generate.returncode == 2 and "scheduler 'fcfs' is registered by more than one plugin" in generate.stderr
    allowed = run_minisgl("plugins", env={**env, "MINISGL_PLUGINS": "nothing-else"})
    assert "CONFLICT" not in allowed.stdout and "qwen3  (minisgl-core" in allowed.stdout


def test_allow_list_keeps_the_core_models() -> None:
    result = run_minisgl(
        "generate", "--model", "demo", "--device", "cpu", "--max-tokens", "2", env={"MINISGL_PLUGINS": "my-plugin"}
    )
    assert result.returncode == 0, result.stderr
    assert "tokens: 2" in result.stdout


def test_hook_tracing_covers_the_register_hooks() -> None:
    result = run_minisgl("plugins", env={"MINISGL_TRACE_HOOKS": "1"})
    for hook in ("minisgl_register_attention_backends", "minisgl_register_cache_policies", "minisgl_register_models"):
        assert f"hook:   {hook}" in result.stderr, hook


def test_plugin_warnings_are_reported_once_per_command(tmp_path: Path) -> None:
    (tmp_path / "broken_mod.py").write_text("raise ImportError('missing library')\n")
    code = textwrap.dedent("""
        import logging, multiprocessing
        logging.basicConfig(level=logging.INFO)
        from minisgl_core.plugins import failed_plugins, load_plugins

        def child(queue):
            logging.basicConfig(level=logging.INFO)
            queue.put(len(failed_plugins()))

        if __name__ == "__main__":
            load_plugins()
            ctx = multiprocessing.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=child, args=(queue,))
            proc.start()
            print("child failures", queue.get(timeout=60))
            proc.join()
        """)
    (tmp_path / "main.py").write_text(code)
    env = {**os.environ, "MINISGL_PLUGIN_MODULES": "broken_mod", "PYTHONPATH": str(tmp_path)}
    env.pop("MINISGL_PLUGIN_WARNINGS", None)
    result = subprocess.run(
        [sys.executable, "main.py"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert "child failures 1" in result.stdout  # the child still knows (for its error messages) ...
    assert result.stderr.count("'broken_mod' failed to load") == 1  # ... but only the parent said so


seen_options: list[dict[str, str]] = []


def options_backend(ctx: AttentionContext) -> TorchAttention:
    seen_options.append(dict(ctx.options))
    return TorchAttention(ctx)


class Notified(SchedulingPolicy):
    """Records admissions and finishes with the scheduler's clock."""

    events: list[tuple[str, int, float]] = []

    def on_admit(self, req: Req, view: SchedulerView) -> None:
        assert req in view.running
        self.events.append(("admit", req.rid, view.now))

    def on_finish(self, req: Req, view: SchedulerView) -> None:
        assert req not in view.running and req.finished
        self.events.append((f"finish:{req.finish_reason.value}", req.rid, view.now))


class V2Plugin:
    @hookimpl
    def minisgl_register_attention_backends(self, register):  # noqa: ANN001, ANN201
        register("test-options", options_backend, devices=("cpu",), options=("block",))

    @hookimpl
    def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
        register("test-notified", Notified)


@pytest.fixture(scope="module")
def v2_plugin():
    name = register_plugin(V2Plugin(), name="v2-test")
    yield
    unregister_plugin(name)


def test_attention_backends_receive_options(v2_plugin, tiny_qwen3) -> None:
    seen_options.clear()
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="test-options", attention_options={"block": "64"})
    out = llm.generate([1, 2, 3], GREEDY, use_tqdm=False)[0]
    assert seen_options == [{"block": "64"}]
    assert out.token_ids == tiny_qwen3.greedy([1, 2, 3], 3)
    with pytest.raises(ValueError, match="takes block; unknown: blok"):
        LLM(str(tiny_qwen3.path), device="cpu", attention="test-options", attention_options={"blok": "64"})


def test_scheduler_policies_are_notified_with_a_clock(v2_plugin, tiny_qwen3) -> None:
    Notified.events.clear()
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", scheduler="test-notified")
    ticks = iter(range(1000))
    llm.scheduler.clock = lambda: float(next(ticks))  # a fake clock: every reading is one "second" later
    before = llm.scheduler.now
    reqs = [llm.runtime.make_request(ids, GREEDY) for ids in ([1, 2], [3, 4, 5])]
    assert all(r.arrival_time > before for r in reqs) and reqs[0].arrival < reqs[1].arrival
    for r in reqs:
        llm.scheduler.add(r)
    while llm.scheduler.has_work():
        llm.scheduler.step()
    kinds = [(kind, rid) for kind, rid, _ in Notified.events]
    assert kinds.count(("admit", reqs[0].rid)) == 1 and kinds.count(("finish:length", reqs[1].rid)) == 1
    assert sorted(kinds) == sorted([("admit", r.rid) for r in reqs] + [("finish:length", r.rid) for r in reqs])
    times = [t for _, _, t in Notified.events]
    assert times == sorted(times) and times[0] > reqs[1].arrival_time
    aborted = llm.runtime.make_request([7, 8], GREEDY)
    llm.scheduler.add(aborted)
    llm.scheduler.abort(aborted)
    assert Notified.events[-1][:2] == ("finish:abort", aborted.rid)
