"""The ``minisgl`` pytest plugin, loaded automatically wherever minisgl-core is installed (entry point
group ``pytest11``): it registers the ``gpu`` marker and skips tests marked with it when no CUDA device is
present, so a plugin's GPU conformance tests can live beside its CPU tests and CI on CPU machines stays green.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (skipped when none is present)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch  # only when GPU tests exist: importing this plugin must stay cheap

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)
