"""The one plugin manager of a process: load plugins once, guard each, keep failures for later.

Every process that needs plugins (the offline ``LLM``, the CLI, the API server and each worker, which are
spawned and therefore start empty) calls :func:`load_plugins`, directly or through a registry lookup. It is
idempotent and cheap after the first call.

What is loaded, in this order:

1. the core's own plugin (:mod:`minisgl_core.builtin`), through the same hooks as any other;
2. every entry point of the group ``minisgl`` (each installed distribution may ship several), limited by
   ``MINISGL_PLUGINS`` when set: a comma-separated allow-list of entry-point or distribution names;
3. modules named in ``MINISGL_PLUGIN_MODULES`` (comma-separated import paths): plugins that are not
   installed, e.g. in tests. Spawned workers inherit the variable, so they load the same ones.

A plugin that fails to import or to register is reported once with a warning that names it and the error,
is remembered (see :func:`failed_plugins`) and leaves every other plugin working. ``MINISGL_TRACE_HOOKS=1``
logs every hook call.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from minisgl_core import hookspecs
from minisgl_core.registry import HOOK_FOR_KIND, REGISTRIES, Entry

logger = logging.getLogger("minisgl.plugins")

ENTRY_POINT_GROUP = "minisgl"
CORE_DISTRIBUTION = "minisgl-core"


@dataclass
class PluginInfo:
    """A loaded plugin: where it came from and what it registered, per extension point."""

    name: str
    distribution: str
    version: str
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be imported or could not register."""

    plugin: str
    error: str


class _State:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.loaded = False
        self.lock = threading.RLock()
        self.plugins: dict[str, PluginInfo] = {}
        self.failures: list[PluginFailure] = []


_state = _State()


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (plugins loaded)."""
    load_plugins()
    return _state.pm


def load_plugins() -> None:
    """Load every plugin once per process; later calls return at once."""
    if _state.loaded:
        return
    with _state.lock:
        if _state.loaded:
            return
        _state.loaded = True
        if os.environ.get("MINISGL_TRACE_HOOKS"):
            _state.pm.trace.root.setwriter(lambda msg: logger.info("hook: %s", msg.rstrip()))
            _state.pm.enable_tracing()
        from minisgl_core import builtin

        _add_plugin(builtin, "builtin", CORE_DISTRIBUTION, _distribution_version(CORE_DISTRIBUTION))
        _load_entry_points()
        for module_name in _split_env("MINISGL_PLUGIN_MODULES"):
            _load_module(module_name)


def register_plugin(plugin: Any, name: str | None = None, distribution: str | None = None) -> str:
    """Register a plugin object or module that is not installed (tests, notebooks); returns its name.

    Its registrations take effect at once. Use :func:`unregister_plugin` to remove it again.
    """
    load_plugins()
    name = name or getattr(plugin, "__name__", None) or type(plugin).__name__
    with _state.lock:
        if name in _state.plugins:
            raise ValueError(f"a plugin named {name!r} is already registered")
        _add_plugin(plugin, name, distribution or name, "unknown")
    return name


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin` and everything it registered."""
    with _state.lock:
        info = _state.plugins.pop(name, None)
        if info is None:
            return
        _state.pm.unregister(name=name)
        for registry in REGISTRIES.values():
            registry.remove_plugin(info.name, info.distribution)
        _state.failures = [f for f in _state.failures if f.plugin != info.distribution]


def loaded_plugins() -> list[PluginInfo]:
    """Every plugin loaded in this process, in load order."""
    load_plugins()
    return list(_state.plugins.values())


def failed_plugins() -> list[PluginFailure]:
    """Plugins that failed to load or register in this process."""
    load_plugins()
    return list(_state.failures)


def _split_env(var: str) -> list[str]:
    return [part.strip() for part in os.environ.get(var, "").split(",") if part.strip()]


def _distribution_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _load_entry_points() -> None:
    allow = set(_split_env("MINISGL_PLUGINS")) if "MINISGL_PLUGINS" in os.environ else None
    seen: set[tuple[str, str]] = set()
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(entry_points, key=lambda e: (e.dist.name if e.dist else "", e.name)):  # stable order
        dist_name = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
        key = (dist_name.lower().replace("_", "-"), ep.name)
        if key in seen:  # the same distribution found twice (editable install, duplicated path)
            continue
        seen.add(key)
        if allow is not None and ep.name not in allow and dist_name not in allow:
            continue
        version = ep.dist.version if ep.dist is not None else "unknown"
        label = f"{dist_name} ({ep.name})"
        try:
            plugin = ep.load()
        except Exception as exc:  # noqa: BLE001 - any import failure must not break other plugins
            _record_failure(label, exc)
            continue
        _add_plugin(plugin, ep.name if ep.name not in _state.plugins else label, dist_name, version)


def _load_module(module_name: str) -> None:
    loaded = {getattr(_state.pm.get_plugin(name), "__name__", None) for name in _state.plugins}
    if module_name in loaded:  # already registered through its entry point
        return
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        _record_failure(module_name, exc)
        return
    _add_plugin(module, module_name, module_name, "unknown")


def _record_failure(plugin: str, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}"
    logger.warning("minisgl plugin %r failed to load and is skipped: %s", plugin, error)
    _state.failures.append(PluginFailure(plugin, error))


def _add_plugin(plugin: Any, name: str, distribution: str, version: str) -> None:
    """Register ``plugin`` with pluggy and collect what it registers, rolling back on failure."""
    try:
        _state.pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl with an unknown argument
        _record_failure(distribution, exc)
        return
    unknown = [attr for attr in dir(plugin) if attr.startswith("minisgl_") and not hasattr(hookspecs, attr)]
    if unknown:
        logger.warning("minisgl plugin %r defines unknown hooks (misspelled?): %s", name, ", ".join(unknown))
    info = PluginInfo(name=name, distribution=distribution, version=version)
    try:
        for kind, hook_name in HOOK_FOR_KIND.items():
            _collect(plugin, kind, hook_name, info)
    except Exception as exc:  # noqa: BLE001 - a failing register hook must not break other plugins
        for registry in REGISTRIES.values():
            registry.remove_plugin(name, distribution)
        _state.pm.unregister(plugin)
        _record_failure(distribution, exc)
        return
    _state.plugins[name] = info


def _collect(plugin: Any, kind: str, hook_name: str, info: PluginInfo) -> None:
    """Call ``plugin``'s implementation of ``hook_name`` with a ``register`` bound to that plugin."""
    hook = getattr(_state.pm.hook, hook_name)
    impls = [impl for impl in hook.get_hookimpls() if impl.plugin is plugin]
    registry = REGISTRIES[kind]

    def register(name: str, factory: Any, *, aliases: tuple[str, ...] | list[str] = (), **meta: Any) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{hook_name}: register() needs a non-empty name, got {name!r}")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise TypeError(f"{hook_name}: factory for {name!r} must be callable or 'module:attr'")
        registry.add(Entry(kind, name, factory, info.name, info.distribution, tuple(aliases), dict(meta)))
        info.registered.setdefault(kind, []).append(name)

    for impl in impls:
        impl.function(**{arg: register for arg in impl.argnames if arg == "register"})
