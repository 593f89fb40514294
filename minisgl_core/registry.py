"""Name -> factory tables filled by the ``register`` hooks, with lookup errors that teach.

There is one :class:`Registry` per extension point (see :data:`REGISTRIES`). Entries remember which
plugin distribution registered them so that ``minisgl plugins`` can show it and a name claimed by two
distributions fails loudly, naming both.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("minisgl.plugins")


class PluginConflictError(ValueError):
    """Two different plugin distributions registered the same name for the same extension point."""


@dataclass(frozen=True)
class Entry:
    """One registered implementation."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    plugin: str
    """The name of the plugin that registered it (unique in a process), e.g. ``"qwen3"``."""
    distribution: str
    """The distribution that ships that plugin, e.g. ``"minisgl-core"``."""
    aliases: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """Return the factory, importing it first when it was registered as ``"module:attribute"``."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """Import (if needed) and call the factory."""
        return self.load()(*args, **kwargs)


class Registry:
    """Implementations of one extension point, keyed by name (aliases resolve to the same entry)."""

    def __init__(self, kind: str, label: str) -> None:
        self.kind = kind
        self.label = label
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._conflicts: dict[str, list[str]] = {}

    def add(self, entry: Entry) -> None:
        """Add ``entry``. Re-registration by the same plugin replaces it; a name claimed by two different
        plugins becomes a conflict: it stays unusable (lookups raise :class:`PluginConflictError`)."""
        clash = False
        for key in (entry.name, *entry.aliases):
            owner = self._owner(key)
            if owner is not None and owner.distribution != entry.distribution:
                plugins = self._conflicts.setdefault(key, [owner.distribution])
                if entry.distribution not in plugins:
                    plugins.append(entry.distribution)
                logger.warning("%s", self._conflict_message(key))
                clash = True
        if clash:
            return
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def _conflict_message(self, key: str) -> str:
        both = " and ".join(repr(p) for p in self._conflicts[key])
        return (
            f"{self.label} {key!r} is registered by more than one plugin: {both}. "
            "Uninstall one of them or limit loading with MINISGL_PLUGINS."
        )

    def conflicts(self) -> dict[str, list[str]]:
        """Names claimed by several plugins, with the plugins that claim them."""
        return {k: list(v) for k, v in self._conflicts.items()}

    def _owner(self, key: str) -> Entry | None:
        name = self._aliases.get(key, key)
        return self._entries.get(name)

    def remove_plugin(self, plugin: str, distribution: str) -> None:
        """Forget everything ``plugin`` registered (used when a plugin is unregistered or failed)."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin]:
            del self._entries[name]
        self._aliases = {a: n for a, n in self._aliases.items() if n in self._entries}
        for key, plugins in list(self._conflicts.items()):
            if distribution in plugins and not any(e.distribution == distribution for e in self._entries.values()):
                plugins.remove(distribution)
            if len(plugins) < 2:
                del self._conflicts[key]

    def names(self) -> list[str]:
        _ensure_plugins_loaded()
        return sorted(self._entries)

    def __contains__(self, key: str) -> bool:
        _ensure_plugins_loaded()
        return self._owner(key) is not None

    def __iter__(self) -> Iterator[Entry]:
        _ensure_plugins_loaded()
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def get(self, key: str) -> Entry:
        """Return the entry for ``key`` or raise ``ValueError`` listing what is available."""
        _ensure_plugins_loaded()
        if key in self._conflicts:
            raise PluginConflictError(self._conflict_message(key))
        entry = self._owner(key)
        if entry is not None:
            return entry
        from minisgl_core.plugins import failed_plugins  # late: plugins imports this module

        available = ", ".join(self.names()) or "(none)"
        message = f"Unknown {self.label} {key!r}. Available: {available}."
        failures = failed_plugins()
        if failures:
            listed = "; ".join(f"{f.plugin}: {f.error}" for f in failures)
            message += f" Plugins that failed to load: {listed}."
        message += " Run `minisgl plugins` to see what is installed."
        raise ValueError(message)


def _ensure_plugins_loaded() -> None:
    from minisgl_core.plugins import load_plugins  # late: plugins imports this module

    load_plugins()


ATTENTION = "attention"
CACHE = "cache"
SCHEDULER = "scheduler"
MODEL = "model"

REGISTRIES: dict[str, Registry] = {
    ATTENTION: Registry(ATTENTION, "attention backend"),
    CACHE: Registry(CACHE, "cache policy"),
    SCHEDULER: Registry(SCHEDULER, "scheduler"),
    MODEL: Registry(MODEL, "model architecture"),
}

HOOK_FOR_KIND: dict[str, str] = {
    ATTENTION: "minisgl_register_attention_backends",
    CACHE: "minisgl_register_cache_policies",
    SCHEDULER: "minisgl_register_schedulers",
    MODEL: "minisgl_register_models",
}
