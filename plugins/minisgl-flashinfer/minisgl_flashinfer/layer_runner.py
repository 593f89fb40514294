"""Running one planned FlashInfer prefill for every layer of a step with little host work.

FlashInfer's ``run`` re-derives the same arguments on every call: checks, defaults for the scales, and,
for the Hopper (``fa3``) kernels, a conversion of the page indices to token offsets - one more kernel per
layer, although all layers of a step share the plan and the pool's layout. :class:`LayerRunner` lets
``run`` do that work once, for the first layer after a plan, records the argument list ``run`` hands to
the compiled module, and for the other layers calls the module directly with only the query, the layer's
caches and a fresh output swapped in. Whatever it cannot record (another backend, another calling
convention) simply goes through ``run`` every time. The GPU tests compare it with ``run``, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch


class _Recorder:
    """Stands in for a wrapper's compiled module during one ``run``: forwards every call and keeps the
    arguments of ``paged_run``."""

    def __init__(self, module: Any) -> None:
        self.module = module
        self.args: list[Any] | None = None

    def paged_run(self, *args: Any) -> Any:
        self.args = list(args)
        return self.module.paged_run(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


class LayerRunner:
    """``run(q, (k_cache, v_cache))`` like the wrapper's, for the layers of one planned step. Call
    :meth:`reset` after every ``plan`` of the wrapper."""

    def __init__(self, wrapper: Any) -> None:
        self.wrapper = wrapper
        self._module: Any = None
        self._args: list[Any] | None = None
        self._slots: tuple[int, int, int, int] = (0, 0, 0, 0)
        self._key: tuple[Any, ...] = ()
        self._out_shape: tuple[int, ...] = ()

    def reset(self) -> None:
        """Forget the recorded call (a new plan changes it)."""
        self._args = None

    def run(self, q: torch.Tensor, paged_kv: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        k_cache, v_cache = paged_kv
        args = self._args
        if args is None or self._key != _key(q, k_cache, v_cache):
            return self._record(q, k_cache, v_cache)
        out = torch.empty(self._out_shape, dtype=q.dtype, device=q.device)
        iq, ik, iv, io = self._slots
        args[iq], args[ik], args[iv], args[io] = q, k_cache, v_cache, out
        self._module.paged_run(*args)
        return out

    def _record(self, q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
        wrapper = self.wrapper
        module = getattr(wrapper, "_cached_module", None)
        if module is None:
            return wrapper.run(q, (k_cache, v_cache))
        recorder = _Recorder(module)
        wrapper._cached_module = recorder
        try:
            out = wrapper.run(q, (k_cache, v_cache))
        finally:
            wrapper._cached_module = module
        args = recorder.args
        slots = [_position(args, t) for t in (q, k_cache, v_cache, out)] if args is not None else []
        if args is None or None in slots or len(set(slots)) != 4:
            self._args = None  # not a call this class knows how to repeat: keep using run()
            return out
        self._module, self._args = module, args
        self._slots = tuple(slots)  # type: ignore[assignment]
        self._key = _key(q, k_cache, v_cache)
        self._out_shape = tuple(out.shape)
        return out


def _key(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> tuple[Any, ...]:
    """What a recorded call depends on besides the plan: shapes, strides and dtypes of its inputs."""
    return (q.shape, q.stride(), q.dtype, k_cache.shape, k_cache.stride(), v_cache.stride(), k_cache.dtype)


def _position(args: list[Any], obj: torch.Tensor) -> int | None:
    """Index of ``obj`` itself (not an equal tensor) in ``args``, if it occurs exactly once."""
    found = [i for i, a in enumerate(args) if a is obj]
    return found[0] if len(found) == 1 else None
