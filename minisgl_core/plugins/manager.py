"""The one plugin manager of a process: load plugins once, guard each, keep failures for later.

Every process that needs plugins (the offline ``LLM``, the CLI, the API server and each worker, which are
spawned and therefore start empty) calls :func:`load_plugins`, directly or through :func:`registry` /
:func:`lookup`. It is idempotent and cheap after the first call.

What is loaded, in this order, each through :func:`_add_plugin` (the core's own implementations take exactly
the path a third-party plugin takes):

1. the core's own plugin (:mod:`minisgl_core.builtin`);
2. every entry point of the group ``minisgl``. ``MINISGL_PLUGINS`` (comma-separated entry-point or
   distribution names), when set, limits the entry points of *other* distributions: minisgl-core's own
   (the Qwen3 and Llama models) always load;
3. modules named in ``MINISGL_PLUGIN_MODULES`` (comma-separated import paths): plugins that are not
   installed, e.g. in tests. Spawned workers inherit the variable, so they load the same ones.

A plugin that fails to import or to register is skipped with a warning that names it and the error, is
remembered (:func:`failed_plugins`, and in unknown-name errors) and leaves every other plugin working.
Warnings are logged once per command: the first process to load plugins sets ``MINISGL_PLUGIN_WARNINGS``,
so the processes it spawns log them at debug level. ``MINISGL_TRACE_HOOKS=1`` logs every hook call, the
register hooks included.
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

from minisgl_core import builtin
from minisgl_core.contracts import hookspecs
from minisgl_core.plugins.registry import KINDS, Entry, Registry

logger = logging.getLogger("minisgl.plugins")

ENTRY_POINT_GROUP = "minisgl"
CORE_DISTRIBUTION = "minisgl-core"
WARNED_ENV = "MINISGL_PLUGIN_WARNINGS"
"""Set by the first process that reported plugin problems; its children report them at debug level."""


@dataclass
class PluginInfo:
    """A loaded plugin: where it came from and what it registered, per kind."""

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
        self.registries = {name: Registry(kind) for name, kind in KINDS.items()}
        self.warn_level = logging.DEBUG if os.environ.get(WARNED_ENV) else logging.WARNING


_state = _State()


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
        _add_plugin(builtin, "builtin", CORE_DISTRIBUTION, _distribution_version(CORE_DISTRIBUTION))
        _load_entry_points()
        for module_name in _split_env("MINISGL_PLUGIN_MODULES"):
            _load_module(module_name)
        if _state.warn_level == logging.WARNING and (_state.failures or _any_conflict()):
            os.environ[WARNED_ENV] = "1"  # reported here: spawned processes stay quiet about it


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (plugins loaded)."""
    load_plugins()
    return _state.pm


def registry(kind: str) -> Registry:
    """The table of ``kind`` (``"attention"``, ``"cache"``, ...), plugins loaded."""
    load_plugins()
    return _state.registries[kind]


def lookup(kind: str, name: str) -> Entry:
    """The entry ``name`` of ``kind``; an unknown name raises ``ValueError`` listing what exists and which
    plugins failed to load."""
    hint = ""
    if _state.failures or not _state.loaded:
        load_plugins()
        listed = "; ".join(f"{f.plugin}: {f.error}" for f in _state.failures)
        hint = f" Plugins that failed to load: {listed}." if listed else ""
    return registry(kind).get(name, hint + " Run `minisgl plugins` to see what is installed.")


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
        for table in _state.registries.values():
            table.remove_plugin(info.name)
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


def _normalise(dist: str) -> str:
    return dist.lower().replace("_", "-")


def _distribution_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _any_conflict() -> bool:
    return any(table.conflicts() for table in _state.registries.values())


def _load_entry_points() -> None:
    allow = set(_split_env("MINISGL_PLUGINS")) if "MINISGL_PLUGINS" in os.environ else None
    seen: set[tuple[str, str]] = set()
    entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(entry_points, key=lambda e: (e.dist.name if e.dist else "", e.name)):  # stable order
        dist_name = ep.dist.name if ep.dist is not None else ep.value.split(":")[0]
        key = (_normalise(dist_name), ep.name)
        if key in seen:  # the same distribution found twice (editable install, duplicated path)
            continue
        seen.add(key)
        own = key[0] == CORE_DISTRIBUTION
        if allow is not None and not own and ep.name not in allow and dist_name not in allow:
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
    logger.log(_state.warn_level, "minisgl plugin %r failed to load and is skipped: %s", plugin, error)
    _state.failures.append(PluginFailure(plugin, error))


def _add_plugin(plugin: Any, name: str, distribution: str, version: str) -> None:
    """Register ``plugin`` with pluggy and run its register hooks, rolling everything back on failure."""
    try:
        _state.pm.register(plugin, name=name)
    except Exception as exc:  # noqa: BLE001 - e.g. a hookimpl with an unknown argument
        _record_failure(distribution, exc)
        return
    unknown = [attr for attr in dir(plugin) if attr.startswith("minisgl_") and not hasattr(hookspecs, attr)]
    if unknown:
        message = "minisgl plugin %r defines unknown hooks (misspelled?): %s"
        logger.log(_state.warn_level, message, name, ", ".join(unknown))
    info = PluginInfo(name=name, distribution=distribution, version=version)
    others = [p for p in _state.pm.get_plugins() if p is not plugin]
    try:
        for kind in KINDS.values():
            if any(impl.plugin is plugin for impl in getattr(_state.pm.hook, kind.hook).get_hookimpls()):
                _state.pm.subset_hook_caller(kind.hook, remove_plugins=others)(register=_register_fn(kind.name, info))
    except Exception as exc:  # noqa: BLE001 - a failing register hook must not break other plugins
        for table in _state.registries.values():
            table.remove_plugin(name)
        _state.pm.unregister(plugin)
        _record_failure(distribution, exc)
        return
    _state.plugins[name] = info


def _register_fn(kind: str, info: PluginInfo) -> Any:
    """The ``register`` callback a plugin's register hook receives: it adds entries owned by ``info``."""
    hook = KINDS[kind].hook
    table = _state.registries[kind]

    def register(name: str, factory: Any, *, aliases: tuple[str, ...] | list[str] = (), **meta: Any) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"{hook}: register() needs a non-empty name, got {name!r}")
        if not (callable(factory) or (isinstance(factory, str) and ":" in factory)):
            raise TypeError(f"{hook}: factory for {name!r} must be callable or 'module:attr'")
        options = meta.get("options")
        if options is not None and (isinstance(options, str) or not all(isinstance(o, str) for o in options)):
            raise TypeError(f"{hook}: options for {name!r} must be a collection of option names")
        entry = Entry(kind, name, factory, info.name, info.distribution, tuple(aliases), dict(meta))
        for key in table.add(entry):
            logger.log(_state.warn_level, "%s", table.conflict_message(key))
        info.registered.setdefault(kind, []).append(name)

    return register
