"""Name -> factory tables, one per kind of plugin, filled by the ``register`` hooks.

A :class:`Registry` is a plain table: it knows nothing of loading. Entries remember which plugin (and which
distribution) registered them, so ``minisgl plugins`` can show it and a name claimed by two different
distributions is a conflict: it stays listed, and selecting it fails naming both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


class PluginConflictError(ValueError):
    """Two different plugin distributions registered the same name for the same kind."""


class PluginImportError(ValueError):
    """A selected implementation's factory could not be imported."""


@dataclass(frozen=True)
class Kind:
    """One kind of plugin: what users call it and which register hook fills its table."""

    name: str
    label: str
    """Singular, for messages: ``"cache policy"``."""
    plural: str
    """For listings: ``"cache policies"``."""
    hook: str


ATTENTION = "attention"
CACHE = "cache"
SCHEDULER = "scheduler"
MODEL = "model"
REASONING_PARSER = "reasoning-parser"
TOOL_PARSER = "tool-parser"
GRAMMAR = "grammar"

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(ATTENTION, "attention backend", "attention backends", "minisgl_register_attention_backends"),
        Kind(CACHE, "cache policy", "cache policies", "minisgl_register_cache_policies"),
        Kind(SCHEDULER, "scheduler", "schedulers", "minisgl_register_schedulers"),
        Kind(MODEL, "model architecture", "models", "minisgl_register_models"),
        Kind(REASONING_PARSER, "reasoning parser", "reasoning parsers", "minisgl_register_reasoning_parsers"),
        Kind(TOOL_PARSER, "tool-call parser", "tool-call parsers", "minisgl_register_tool_parsers"),
        Kind(GRAMMAR, "grammar backend", "grammar backends", "minisgl_register_grammar_backends"),
    )
}


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

    @property
    def origin(self) -> str:
        return f"plugin {self.plugin!r} ({self.distribution})"

    def load(self) -> Callable[..., Any]:
        """The factory, imported first when it was registered as ``"module:attribute"``; a failed import is a
        :class:`PluginImportError` naming the plugin."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split(".") if attr else ():
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - any failure names the plugin
            label = KINDS[self.kind].label if self.kind in KINDS else self.kind
            raise PluginImportError(
                f"{label} {self.name!r} of {self.origin} cannot be loaded from {self.factory!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return obj

    def create(self, *args: Any, **kwargs: Any) -> Any:
        """Import (if needed) and call the factory."""
        return self.load()(*args, **kwargs)


class Registry:
    """Implementations of one kind, keyed by name (aliases resolve to the same entry)."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}
        self._claims: dict[str, list[Entry]] = {}  # every entry that claimed a key, conflicting or not

    def add(self, entry: Entry) -> list[str]:
        """Add ``entry``; return the keys (name or aliases) it conflicts on. The same distribution
        registering a name again (found twice on ``sys.path``, say) replaces its entry; a key claimed by two
        different distributions is a conflict whichever came first, and stays unusable (:meth:`get` raises
        :class:`PluginConflictError`)."""
        conflicts = []
        for key in (entry.name, *entry.aliases):
            claims = [e for e in self._claims.get(key, []) if e.distribution != entry.distribution]
            self._claims[key] = [*claims, entry]
            if claims:
                conflicts.append(key)
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name
        return conflicts

    def conflict_message(self, key: str) -> str:
        owners = " and ".join(e.origin for e in self._claims[key])
        return (
            f"{self.kind.label} {key!r} is registered by more than one plugin: {owners}. "
            "Uninstall one of them or limit loading with MINISGL_PLUGINS."
        )

    def conflicts(self) -> dict[str, list[Entry]]:
        """Keys claimed by several plugins, with the entries that claim them."""
        return {k: list(v) for k, v in self._claims.items() if len(v) > 1}

    def remove_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered (it was unregistered, or failed half-way)."""
        for key, claims in list(self._claims.items()):
            kept = [e for e in claims if e.plugin != plugin]
            if kept:
                self._claims[key] = kept
            else:
                del self._claims[key]
        self._entries = {n: e for n, e in self._entries.items() if e.plugin != plugin}
        for claims in self._claims.values():  # a surviving claimant takes the name back
            self._entries.setdefault(claims[-1].name, claims[-1])
        self._aliases = {a: n for a, n in self._aliases.items() if n in self._entries}

    def names(self) -> list[str]:
        """Registered names, sorted (aliases not included)."""
        return sorted(self._entries)

    def keys(self) -> list[str]:
        """Every name a user may select: names and aliases, sorted."""
        return sorted({*self._entries, *self._aliases})

    def __contains__(self, key: str) -> bool:
        return self._aliases.get(key, key) in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def get(self, key: str, hint: str = "") -> Entry:
        """The entry for ``key``; ``ValueError`` listing what is available (plus ``hint``) when unknown,
        :class:`PluginConflictError` when two plugins claim it."""
        if len(self._claims.get(key, [])) > 1:
            raise PluginConflictError(self.conflict_message(key))
        entry = self._entries.get(self._aliases.get(key, key))
        if entry is not None:
            return entry
        available = ", ".join(self.names()) or "(none)"
        raise ValueError(f"Unknown {self.kind.label} {key!r}. Available: {available}.{hint}")
