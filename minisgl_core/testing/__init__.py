"""Testing minisgl and its plugins: conformance suites, tiny random models, and loading a plugin under test.

The suites are pytest base classes; a plugin's test subclasses one and names what it tests::

    from minisgl_core.testing import CachePolicySuite, use_plugin

    use_plugin("my_policy_plugin")          # loaded even before `pip install -e .`

    class TestMyPolicy(CachePolicySuite):
        policy = "my-policy"

- :class:`AttentionBackendSuite`: an attention backend against the ``torch`` reference, step by step;
- :class:`CachePolicySuite`: a KV-cache policy: slot accounting, prefix hits, eviction, generation;
- :class:`SchedulerSuite`: a scheduling policy: method contracts, liveness, fairness bounds;
- :class:`ModelPluginSuite`: a model: greedy tokens equal to transformers on a tiny random config.

Names are imported lazily, so ``import minisgl_core.testing.tiny_models`` (the demo model uses it) does
not need pytest.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AttentionBackendSuite": "minisgl_core.testing.attention_suite",
    "CachePolicySuite": "minisgl_core.testing.cache_suite",
    "SchedulerSuite": "minisgl_core.testing.scheduler_suite",
    "ModelPluginSuite": "minisgl_core.testing.model_suite",
    "use_plugin": "minisgl_core.testing.plugins",
    "tiny_model_dir": "minisgl_core.testing.tiny_models",
    "save_tiny_model": "minisgl_core.testing.tiny_models",
    "save_random_model": "minisgl_core.testing.tiny_models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'minisgl_core.testing' has no attribute {name!r}")
