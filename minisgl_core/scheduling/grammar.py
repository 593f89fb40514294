"""Structured outputs in the step loop: compiling constraints off the loop, and the per-step token bitmask.

Constraints compile on one worker thread, cached by constraint (kind and text, failures included), so the
step loop never waits for a compiler: a request whose grammar is still compiling is held back, while the
others run. The grammar backend itself is created on that thread too, on the first constrained request (a
server that never sees one never loads its tokenizer or library). For a step that samples constrained
requests, :meth:`GrammarManager.fill` writes the host bitmask (a row of ``-1`` words, every token, for the
unconstrained ones); the scheduler calls it after reading the previous step's tokens, while the device runs
this step's forward.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

import torch

from minisgl_core.contracts.grammar import Constraint, GrammarBackend
from minisgl_core.contracts.request import FinishReason, Req

CACHE_ENTRIES = 1024
FIELDS = {"json_object": "json_schema"}
"""Constraint kind -> the :class:`SamplingParams` field it came from, where they differ (errors name it)."""


def _message(constraint: Constraint, exc: BaseException) -> tuple[str, str]:
    """A compile error's message, starting with the field it names, and that field."""
    field = FIELDS.get(constraint.kind, constraint.kind)
    text = str(exc) if isinstance(exc, ValueError) else repr(exc)
    return (text if text.startswith(field) else f"{field}: {text}"), field


class GrammarManager:
    """Compiled grammars (cached), requests waiting for theirs, and the host bitmask of the next step."""

    def __init__(self, create: Callable[[], GrammarBackend], vocab_size: int, rows: int, pin: bool) -> None:
        self._create = create
        self._backend: GrammarBackend | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="minisgl-grammar")
        self._cache: OrderedDict[Constraint, Future] = OrderedDict()
        self.vocab_size = vocab_size
        self.live: set[Req] = set()
        """Requests holding a matcher, until they finish (pruned by :meth:`has_live`)."""
        self._buffers: list[torch.Tensor] = []
        self._next = 0
        self._rows, self._pin = rows, pin
        self.fill_seconds, self.fill_steps = 0.0, 0  # host time filling bitmasks, and steps, cumulative

    # -- compiling (worker thread) ----------------------------------------------------------------------

    def _compile(self, constraint: Constraint) -> Any:
        if self._backend is None:
            self._backend = self._create()
        return self._backend.compile(constraint)

    def submit(self, constraint: Constraint) -> Future:
        """The compilation of ``constraint``: cached, or started on the worker thread."""
        fut = self._cache.get(constraint)
        if fut is None:
            fut = self._executor.submit(self._compile, constraint)
            self._cache[constraint] = fut
            if len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(constraint)
        return fut

    def result(self, req: Req, timeout: float | None = None) -> None:
        """Wait for ``req``'s grammar; ``ValueError`` naming the field when it does not compile."""
        constraint = req.params.constraint
        assert constraint is not None
        try:
            self.submit(constraint).result(timeout)
        except ValueError as exc:
            raise ValueError(_message(constraint, exc)[0]) from None

    # -- the step loop ----------------------------------------------------------------------------------

    def take_ready(self, compiling: list[Req]) -> tuple[list[Req], list[tuple[Req, str, str]]]:
        """Of ``compiling`` (updated in place to those still compiling): the requests whose grammar compiled
        (now holding a matcher), and ``(request, message, field)`` of those whose grammar failed."""
        ready, failed, still = [], [], []  # type: ignore[var-annotated]
        for req in compiling:
            constraint = req.params.constraint
            assert constraint is not None
            fut = self.submit(constraint)
            if not fut.done():
                still.append(req)
            elif (exc := fut.exception()) is not None:
                failed.append((req, *_message(constraint, exc)))
            else:
                assert self._backend is not None
                req.grammar = self._backend.matcher(fut.result())
                self.live.add(req)
                ready.append(req)
        compiling[:] = still
        return ready, failed

    def has_live(self) -> bool:
        """True while some unfinished request holds a matcher."""
        if self.live:
            self.live = {r for r in self.live if not r.finished}
        return bool(self.live)

    def fill(self, sampled: Sequence[Req]) -> tuple[torch.Tensor, list[Req]]:
        """The host bitmask rows of one step (row ``i`` for ``sampled[i]``), and the requests at a dead end
        (nothing allowed: their rows allow everything, and the caller ends them)."""
        if not self._buffers:  # two, alternating: a step's copy may still read the previous one
            words = (self.vocab_size + 31) // 32
            make = lambda: torch.empty((self._rows, words), dtype=torch.int32, pin_memory=self._pin)
            self._buffers = [make(), make()]
        mask = self._buffers[self._next][: len(sampled)]
        self._next ^= 1
        mask.fill_(-1)
        rows = [i for i, req in enumerate(sampled) if req.grammar is not None and not req.finished]
        if not rows:
            return mask, []
        assert self._backend is not None
        self._backend.fill_bitmasks([sampled[i].grammar for i in rows], mask, rows)
        # all-zero rows; two word-wise reductions over the view (a gather or a bool temporary costs ~15x more)
        dead_rows = ((mask.amax(dim=1) == 0) & (mask.amin(dim=1) == 0)).nonzero().flatten()
        mask[dead_rows] = -1
        return mask, [sampled[i] for i in dead_rows.tolist()]

    def admit_compiled(self, sched: Any) -> None:
        """Move the requests whose grammar compiled to ``sched``'s waiting queue; those whose grammar failed
        end (``abort``) and go to ``sched.grammar_errors`` for the caller to report."""
        if not (sched.waiting or sched.running):  # nothing else to do: wait a little rather than spin
            futures = [self.submit(r.params.constraint) for r in sched.compiling]
            wait(futures, 0.005, return_when=FIRST_COMPLETED)
        ready, failed = self.take_ready(sched.compiling)
        sched.waiting += ready
        for req, _, _ in failed:
            req.finish_reason = FinishReason.ABORT
        sched.grammar_errors += failed

    def step_mask(self, sched: Any, sampled: Sequence[Req]) -> torch.Tensor:
        """:meth:`fill` for ``sched``'s step; a request at a dead end finishes now, its finish reported with
        the next step's updates (its token in flight is dropped)."""
        start = time.perf_counter()
        mask, dead = self.fill(sampled)
        self.fill_seconds += time.perf_counter() - start
        self.fill_steps += 1
        for req in dead:
            sched.finish(req, FinishReason.GRAMMAR)
            sched.report(req, FinishReason.GRAMMAR)
        return mask

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
