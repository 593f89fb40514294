"""``minisgl new-plugin``: write a working plugin package - pyproject with the entry point, the module, a
test that runs the conformance suite, a README - for any extension point.

The package passes its own tests as generated (``pytest`` in its folder, before or after
``pip install -e .``); it is a starting point to edit, not a stub.
"""

from minisgl_core.scaffold.generate import KINDS, PluginNames, new_plugin

__all__ = ["KINDS", "PluginNames", "new_plugin"]
