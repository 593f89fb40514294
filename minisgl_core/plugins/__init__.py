"""The plugin system: the process's one plugin manager (loading, failures, lookups), the name -> factory
tables it fills, and selection by name (``auto``, device pairing, declared options)."""

from minisgl_core.plugins.manager import (
    PluginFailure,
    PluginInfo,
    failed_plugins,
    load_plugins,
    loaded_plugins,
    lookup,
    plugin_manager,
    register_plugin,
    registry,
    unregister_plugin,
)
from minisgl_core.plugins.registry import (
    ATTENTION,
    CACHE,
    KINDS,
    MODEL,
    REASONING_PARSER,
    SCHEDULER,
    TOOL_PARSER,
    Entry,
    Kind,
    PluginConflictError,
    PluginImportError,
    Registry,
)
from minisgl_core.plugins.select import backends_for_device, build, check_options, resolve_attention

__all__ = [
    "ATTENTION",
    "CACHE",
    "KINDS",
    "MODEL",
    "REASONING_PARSER",
    "SCHEDULER",
    "TOOL_PARSER",
    "Entry",
    "Kind",
    "PluginConflictError",
    "PluginFailure",
    "PluginImportError",
    "PluginInfo",
    "Registry",
    "backends_for_device",
    "build",
    "check_options",
    "failed_plugins",
    "load_plugins",
    "loaded_plugins",
    "lookup",
    "plugin_manager",
    "register_plugin",
    "registry",
    "resolve_attention",
    "unregister_plugin",
]
