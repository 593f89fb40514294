"""Selecting implementations by name: ``auto`` attention, device pairing, declared options, and building
an implementation with a check of what its factory returned."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from minisgl_core.contracts.model_config import ModelConfig
from minisgl_core.plugins.manager import lookup, plugin_manager, registry
from minisgl_core.plugins.registry import ATTENTION, GRAMMAR, KINDS, Entry

if TYPE_CHECKING:
    import torch

logger = logging.getLogger("minisgl.plugins")

FALLBACK_ATTENTION = "torch"


def backends_for_device(device_type: str) -> list[str]:
    """Registered attention backends that declare support for ``device_type`` (``"cpu"``, ``"cuda"``)."""
    return [e.name for e in registry(ATTENTION) if device_type in e.metadata.get("devices", ("cuda",))]


def resolve_attention(name: str, device: torch.device, model_config: ModelConfig, quiet: bool = False) -> str:
    """The backend name ``name`` stands for on ``device``: ``auto`` goes through the plugins' choice hook;
    a named backend must declare ``device``'s type (``ValueError`` otherwise)."""
    if name == "auto":
        available = backends_for_device(device.type)
        hook = plugin_manager().hook.minisgl_choose_attention_backend
        choice = hook(device=device, model_config=model_config, available=available)
        log = logger.debug if quiet else logger.info
        if choice is None:
            log("attention 'auto': no plugin offered a backend for %s; using %r", device, FALLBACK_ATTENTION)
            return FALLBACK_ATTENTION
        if choice not in available:
            logger.warning("attention 'auto': a plugin chose %r, which is not available; using torch", choice)
            return FALLBACK_ATTENTION
        log("attention 'auto' chose %r for %s", choice, device)
        return choice
    entry = lookup(ATTENTION, name)
    devices = entry.metadata.get("devices", ("cuda",))
    if device.type not in devices:
        raise ValueError(
            f"attention backend {name!r} runs on {', '.join(devices)}, not on {device.type}. "
            f"Backends for {device.type}: {', '.join(backends_for_device(device.type)) or '(none)'}."
        )
    return entry.name


PREFERRED_GRAMMAR = "xgrammar"


def resolve_grammar(name: str) -> str | None:
    """The grammar backend ``name`` stands for: ``none`` -> None; ``auto`` -> ``xgrammar`` when registered,
    else the first registered backend, else None; a name must be registered (``ValueError`` otherwise)."""
    if name == "none":
        return None
    if name == "auto":
        names = registry(GRAMMAR).names()
        return PREFERRED_GRAMMAR if PREFERRED_GRAMMAR in names else (names[0] if names else None)
    return lookup(GRAMMAR, name).name


def check_options(entry: Entry, options: Mapping[str, str]) -> None:
    """``ValueError`` for option keys ``entry`` does not declare (when it declares its options at all)."""
    accepted = entry.metadata.get("options")
    if accepted is None:
        return
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = f"takes {', '.join(sorted(accepted))}" if accepted else "takes no options"
        raise ValueError(f"{KINDS[entry.kind].label} {entry.name!r} {takes}; unknown: {', '.join(unknown)}")


def build(kind: str, name: str, ctx: Any, expected: type) -> Any:
    """Call the factory of ``name`` with ``ctx`` and check that it returned an ``expected``."""
    entry = lookup(kind, name)
    obj = entry.create(ctx)
    if not isinstance(obj, expected):
        raise TypeError(
            f"{KINDS[kind].label} {name!r} of {entry.origin}: factory returned {type(obj).__name__}, "
            f"not a {expected.__name__}"
        )
    return obj
