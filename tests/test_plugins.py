"""The plugin system: selection by name, guarded loading, conflicts, allow-list, listing, spawned workers."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minisgl_core import LLM, SamplingParams, hookimpl
from minisgl_core.builtin.naive_cache import NaiveCache
from minisgl_core.contracts.cache import CacheContext
from minisgl_core.contracts.scheduler import SchedulerContext, SchedulingPolicy
from minisgl_core.plugins import (
    CACHE,
    SCHEDULER,
    PluginConflictError,
    lookup,
    register_plugin,
    registry,
    unregister_plugin,
)


class CountingCache(NaiveCache):
    """A test policy: no sharing, but it counts the sequences offered to it."""

    inserted = 0

    def insert(self, token_ids, slots):  # noqa: ANN001, ANN201
        CountingCache.inserted += 1
        return super().insert(token_ids, slots)


class ShortestFirst(SchedulingPolicy):
    def admission_order(self, view):  # noqa: ANN001, ANN201
        return sorted(view.waiting, key=lambda r: (len(r.prompt_ids), r.arrival))


contexts: list[CacheContext | SchedulerContext] = []
"""What the capturing factories below were given, in order."""


def capture_cache(ctx: CacheContext) -> NaiveCache:
    contexts.append(ctx)
    return NaiveCache(ctx)


def capture_scheduler(ctx: SchedulerContext) -> SchedulingPolicy:
    contexts.append(ctx)
    return SchedulingPolicy(ctx)


class InlinePlugin:
    @hookimpl
    def minisgl_register_cache_policies(self, register):  # noqa: ANN001, ANN201
        register("test-counting", CountingCache, description="test")
        register("test-capture", capture_cache)

    @hookimpl
    def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
        register("test-shortest", ShortestFirst)
        register("test-capture", capture_scheduler)


@pytest.fixture
def inline_plugin():
    name = register_plugin(InlinePlugin(), name="inline-test")
    yield name
    unregister_plugin(name)


def test_unregistered_plugin_is_selectable_by_name(inline_plugin, tiny_qwen3) -> None:
    llm = LLM(str(tiny_qwen3.path), device="cpu", attention="torch", cache="test-counting", scheduler="test-shortest")
    before = CountingCache.inserted
    outs = llm.generate([[1, 2, 3], [4, 5]], SamplingParams(temperature=0, max_tokens=4, ignore_eos=True))
    assert [o.token_ids for o in outs] == [tiny_qwen3.greedy([1, 2, 3], 4), tiny_qwen3.greedy([4, 5], 4)]
    assert CountingCache.inserted >= before + 2  # at prompt completion and at finish
    assert type(llm.scheduler.policy) is ShortestFirst


def test_options_reach_the_factories_as_read_only_strings(inline_plugin, tiny_qwen3) -> None:
    contexts.clear()
    LLM(
        str(tiny_qwen3.path), device="cpu", attention="torch", cache="test-capture", scheduler="test-capture",
        cache_options={"max_tokens": "1000"}, scheduler_options={"window": "8", "mode": "a=b"},
    )  # fmt: skip
    cache_ctx, scheduler_ctx = contexts
    assert isinstance(cache_ctx, CacheContext) and dict(cache_ctx.options) == {"max_tokens": "1000"}
    assert isinstance(scheduler_ctx, SchedulerContext) and dict(scheduler_ctx.options) == {"window": "8", "mode": "a=b"}
    with pytest.raises(TypeError):
        cache_ctx.options["max_tokens"] = "1"  # type: ignore[index]
    contexts.clear()
    LLM(str(tiny_qwen3.path), device="cpu", attention="torch", cache="test-capture", scheduler="test-capture")
    assert [dict(ctx.options) for ctx in contexts] == [{}, {}]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cache_options": {"k": 1}}, r"cache_options\['k'\] must be a string"),
        ({"scheduler_options": {"": "v"}}, "a key of scheduler_options must be a non-empty string"),
        ({"scheduler_options": {"a=b": "v"}}, "without '=' or whitespace, got 'a=b'"),
        ({"cache_options": ["k=v"]}, "cache_options must be a mapping"),
    ],
)
def test_malformed_options_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLM("demo", device="cpu", **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cache": "radix", "cache_options": {"max_tokens": "9"}}, "'radix' takes no options; unknown: max_tokens"),
        ({"cache": "naive", "cache_options": {"a": "1", "b": "2"}}, "'naive' takes no options; unknown: a, b"),
        ({"scheduler": "fcfs", "scheduler_options": {"window": "8"}}, "scheduler 'fcfs' takes no options"),
        ({"attention": "torch", "attention_options": {"x": "1"}}, "attention backend 'torch' takes no options"),
    ],
)
def test_built_in_policies_reject_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LLM("demo", device="cpu", **kwargs)


def test_option_flag_reads_booleans_and_refuses_anything_else() -> None:
    from minisgl_core.contracts import option_flag

    options = {"a": "TRUE", "b": "off", "c": "1", "d": "maybe"}
    assert option_flag(options, "a") and not option_flag(options, "b") and option_flag(options, "c")
    assert option_flag(options, "missing", default=True) and not option_flag(options, "missing")
    with pytest.raises(ValueError, match="option d must be true or false, got 'maybe'"):
        option_flag(options, "d")


def test_unregister_removes_the_names(inline_plugin) -> None:
    assert "test-counting" in registry(CACHE)
    unregister_plugin(inline_plugin)
    assert "test-counting" not in registry(CACHE)
    assert "test-shortest" not in registry(SCHEDULER)


def test_same_distribution_may_reregister_but_another_conflicts(inline_plugin) -> None:
    class Clash:
        @hookimpl
        def minisgl_register_cache_policies(self, register):  # noqa: ANN001, ANN201
            register("test-counting", NaiveCache)

    register_plugin(Clash(), name="clash", distribution="other-dist")
    try:
        with pytest.raises(
            PluginConflictError, match=r"plugin 'inline-test' \(inline-test\) and plugin 'clash' \(other-dist\)"
        ):
            lookup(CACHE, "test-counting")
        assert isinstance(PluginConflictError("x"), ValueError)
    finally:
        unregister_plugin("clash")
    assert lookup(CACHE, "test-counting").factory is CountingCache


def test_failing_register_hook_is_isolated(caplog) -> None:
    class Broken:
        @hookimpl
        def minisgl_register_schedulers(self, register):  # noqa: ANN001, ANN201
            register("test-half", SchedulingPolicy)
            raise RuntimeError("boom in register")

    register_plugin(Broken(), name="broken-register")
    try:
        assert "test-half" not in registry(SCHEDULER)  # rolled back
        assert "fcfs" in registry(SCHEDULER)
        with pytest.raises(ValueError, match="failed to load: broken-register: RuntimeError: boom in register"):
            lookup(SCHEDULER, "nope")
    finally:
        unregister_plugin("broken-register")


# -- real entry points of fake installed distributions, exercised in fresh processes ---------------------


def make_distribution(site: Path, dist: str, module: str, source: str) -> None:
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[minisgl]\n{module} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


GOOD_CACHE = """
    from minisgl_core import hookimpl

    @hookimpl
    def minisgl_register_cache_policies(register):
        register("shared-name", "minisgl_core.builtin.naive_cache:NaiveCache")
"""


@pytest.fixture
def fake_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site, "minisgl-broken", "broken_plugin", "raise ImportError('needs a missing library')\n")
    make_distribution(site, "minisgl-alpha", "alpha_plugin", GOOD_CACHE)
    make_distribution(site, "minisgl-beta", "beta_plugin", GOOD_CACHE)
    return site


def run_minisgl(site: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "minisgl_core", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_minisgl_plugins_lists_plugins_conflicts_and_failures(fake_site: Path) -> None:
    result = run_minisgl(fake_site, "plugins")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "builtin  (minisgl-core" in out and "attention backends: torch" in out
    assert "qwen3  (minisgl-core" in out and "models: Qwen3ForCausalLM" in out
    assert "models: LlamaForCausalLM" in out
    assert (
        "CONFLICT  cache policy 'shared-name' registered by: alpha_plugin (minisgl-alpha), beta_plugin (minisgl-beta)"
        in out
    )
    assert "minisgl-broken (broken_plugin): ImportError: needs a missing library" in out
    assert "minisgl plugin 'minisgl-broken (broken_plugin)' failed to load" in result.stderr


def test_unknown_name_error_lists_failures(fake_site: Path) -> None:
    result = run_minisgl(fake_site, "generate", "--model", "demo", "--device", "cpu", "--cache", "nope")
    assert result.returncode != 0
    assert "invalid choice: 'nope'" in result.stderr and "naive" in result.stderr
    code = (
        "from minisgl_core.plugins import lookup\n"
        "try:\n    lookup('cache', 'nope')\nexcept ValueError as e:\n    print(e)\n"
        "try:\n    lookup('cache', 'shared-name')\nexcept ValueError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(fake_site)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60).stdout
    assert "Unknown cache policy 'nope'. Available: naive, radix, shared-name." in out
    assert "minisgl-broken (broken_plugin): ImportError: needs a missing library" in out
    assert "plugin 'alpha_plugin' (minisgl-alpha) and plugin 'beta_plugin' (minisgl-beta)" in out


def test_allow_list_limits_loading(fake_site: Path) -> None:
    result = run_minisgl(fake_site, "plugins", env={"MINISGL_PLUGINS": "qwen3,minisgl-alpha"})
    assert "qwen3" in result.stdout and "alpha_plugin" in result.stdout
    assert "llama  (minisgl-core" in result.stdout  # the core distribution's own entry points always load
    assert "beta_plugin" not in result.stdout and "CONFLICT" not in result.stdout
    assert "failed" not in result.stdout


def _registered_in_child(queue) -> None:  # noqa: ANN001
    from minisgl_core.plugins import failed_plugins, registry

    queue.put((sorted(registry("scheduler").names()), failed_plugins()))


def test_spawned_workers_load_the_same_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "env_plugin.py").write_text(
        "from minisgl_core import hookimpl\n"
        "from minisgl_core.contracts import SchedulingPolicy\n"
        "@hookimpl\n"
        "def minisgl_register_schedulers(register):\n"
        "    register('from-env', SchedulingPolicy)\n"
    )
    monkeypatch.setenv("MINISGL_PLUGIN_MODULES", "env_plugin")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned children inherit the parent's sys.path
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_registered_in_child, args=(queue,))
    proc.start()
    names = queue.get(timeout=60)
    proc.join(timeout=30)
    schedulers, failures = names
    assert {"fcfs", "from-env"} <= set(schedulers) and failures == []  # plus installed plugins' (plugins/*)


def test_misspelled_hook_is_reported(caplog) -> None:
    class Typo:
        @hookimpl
        def minisgl_register_cache_policy(self, register):  # noqa: ANN001, ANN201 - missing "ies"
            pass

    with caplog.at_level("WARNING", logger="minisgl.plugins"):
        register_plugin(Typo(), name="typo")
    unregister_plugin("typo")
    assert "unknown hooks (misspelled?): minisgl_register_cache_policy" in caplog.text
