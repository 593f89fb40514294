"""Turning the user's ``--attention`` value into backend instances (``auto``, one name, or PREFILL,DECODE)."""

from __future__ import annotations

import logging

import torch

from minisgl_core.attention.base import AttentionBackend, AttentionContext
from minisgl_core.model_config import ModelConfig
from minisgl_core.plugins import plugin_manager
from minisgl_core.registry import ATTENTION, REGISTRIES

logger = logging.getLogger("minisgl.attention")

FALLBACK = "torch"


def backends_for_device(device: torch.device) -> list[str]:
    """Registered backends that declare support for ``device``'s type."""
    return [e.name for e in REGISTRIES[ATTENTION] if device.type in e.metadata.get("devices", ("cuda",))]


def resolve_name(name: str, device: torch.device, model_config: ModelConfig) -> str:
    """Resolve ``auto`` through the plugins' choice hook; check that a named backend runs on ``device``."""
    pm = plugin_manager()
    if name == "auto":
        available = backends_for_device(device)
        choice = pm.hook.minisgl_choose_attention_backend(device=device, model_config=model_config, available=available)
        if choice is None:
            logger.info("attention 'auto': no plugin offered a backend for %s; using %r", device, FALLBACK)
            return FALLBACK
        if choice not in available:
            logger.warning("attention 'auto': a plugin chose %r, which is not available; using %r", choice, FALLBACK)
            return FALLBACK
        logger.info("attention 'auto' chose %r for %s", choice, device)
        return choice
    entry = REGISTRIES[ATTENTION].get(name)
    devices = entry.metadata.get("devices", ("cuda",))
    if device.type not in devices:
        raise ValueError(
            f"attention backend {name!r} runs on {', '.join(devices)}, not on {device.type}. "
            f"Backends for {device.type}: {', '.join(backends_for_device(device)) or '(none)'}."
        )
    return entry.name


def create_backends(
    names: tuple[str, str], ctx: AttentionContext, model_config: ModelConfig
) -> tuple[AttentionBackend, AttentionBackend]:
    """Instantiate the prefill and decode backends (one shared instance when both names agree)."""
    prefill_name = resolve_name(names[0], ctx.device, model_config)
    decode_name = prefill_name if names[1] == names[0] else resolve_name(names[1], ctx.device, model_config)
    prefill = REGISTRIES[ATTENTION].get(prefill_name).create(ctx)
    decode = prefill if decode_name == prefill_name else REGISTRIES[ATTENTION].get(decode_name).create(ctx)
    for backend, name in ((prefill, prefill_name), (decode, decode_name)):
        if not isinstance(backend, AttentionBackend):
            raise TypeError(f"attention backend {name!r} factory returned {type(backend).__name__}")
    logger.info("attention: prefill=%s decode=%s", prefill_name, decode_name)
    return prefill, decode
