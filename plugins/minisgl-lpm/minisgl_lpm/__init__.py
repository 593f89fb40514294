"""minisgl-lpm: registers the ``lpm`` scheduler (longest cached prefix first) through the public hooks.

Importing this module stays cheap: the policy is named as ``"module:attribute"`` and imported only when a
user selects ``--scheduler lpm``.
"""

from __future__ import annotations

from minisgl_core import hookimpl

__version__ = "0.1.0"


@hookimpl
def minisgl_register_schedulers(register) -> None:  # noqa: ANN001 - the core's register callback
    register(
        "lpm",
        "minisgl_lpm.policy:LongestPrefixMatch",
        description="longest cached prefix first (cache-aware); fcfs order when more than 128 requests wait",
        options=("max_queue_len",),  # checked before the model loads; the policy validates the value
    )
