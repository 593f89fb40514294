"""Making a plugin under test visible to the core, whether or not it is installed."""

from __future__ import annotations

import importlib

from minisgl_core.plugins import plugin_manager, register_plugin


def use_plugin(module_name: str) -> str:
    """Make sure the plugin module ``module_name`` is loaded in this process; returns its plugin name.

    When the plugin's distribution is installed, its entry point already loaded the module and nothing
    happens. Otherwise (a fresh checkout, before ``pip install -e .``) the module is registered as if
    ``MINISGL_PLUGIN_MODULES`` named it. Either way the module is registered once, so its names never
    conflict with themselves. Call it at the top of a plugin's test module.
    """
    module = importlib.import_module(module_name)
    pm = plugin_manager()
    if pm.is_registered(module):
        return pm.get_name(module) or module_name
    return register_plugin(module, name=module_name, distribution=module_name)
