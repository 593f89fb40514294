"""A test-only attention backend: the torch backend with a slow prefill (``MINISGL_TEST_PREFILL_DELAY``
seconds per prefill step). Each prefill step appends the wall-clock time it started to the file named by
``MINISGL_TEST_PREFILL_LOG``, so a test can compare a client's clock with the engine's."""

from __future__ import annotations

import os
import time
from typing import Any

from minisgl_core import hookimpl
from minisgl_core.builtin.torch_attention import TorchAttention
from minisgl_core.contracts.batch import ForwardBatch, Phase


class SlowPrefill(TorchAttention):
    def prepare(self, batch: ForwardBatch) -> None:
        if batch.phase is Phase.PREFILL:
            with open(os.environ["MINISGL_TEST_PREFILL_LOG"], "a") as f:
                f.write(f"{time.time()}\n")
            time.sleep(float(os.environ.get("MINISGL_TEST_PREFILL_DELAY", "0.3")))
        super().prepare(batch)


def create(ctx: Any) -> SlowPrefill:
    return SlowPrefill(ctx)


@hookimpl
def minisgl_register_attention_backends(register: Any) -> None:
    register(
        "slow_torch", f"{__name__}:create", devices=("cpu",), description="torch, slow prefill (tests)", options=()
    )
