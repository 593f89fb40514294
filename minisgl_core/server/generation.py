"""One HTTP request's engine requests (``n`` choices times the prompts) as its handler sees them: outputs
routed here by the :class:`~minisgl_core.server.engine_client.EngineClient` are handed out by
:meth:`Generation.next`, at most one per choice per call (a slow consumer gets bigger deltas, not more of
them), the engine's acceptance of each choice always alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from minisgl_core.server.errors import ClientGone
from minisgl_core.server.messages import RequestOutput
from minisgl_core.server.metrics import Metrics


class Generation:
    """The engine requests behind one HTTP request (``n`` choices times the prompts), in choice order."""

    def __init__(
        self, rids: list[str], prompt_index: list[int], metrics: Metrics, forget: Callable[[Generation], None]
    ) -> None:
        self.metrics = metrics
        self.forget = forget
        """Called by :meth:`close`: the client stops routing to this generation and aborts what is unfinished."""
        self.rids = rids
        self.prompt_index = prompt_index
        self.index = {rid: i for i, rid in enumerate(rids)}
        self.unfinished = set(rids)
        self.start = time.monotonic()
        self.last_time = [0.0] * len(rids)
        self._outputs: list[tuple[int, RequestOutput]] = []
        self._event = asyncio.Event()
        self._error: BaseException | None = None
        self._watcher: asyncio.Task | None = None
        self._handed = [False] * len(rids)
        """Per choice: :meth:`next` returned an output of it (the first is the engine's acceptance)."""

    @property
    def finished(self) -> bool:
        """Every request finished and every output was handed out by :meth:`next`."""
        return not self.unfinished and not self._outputs

    def push(self, out: RequestOutput) -> None:
        """Called by the client's reader task for each output of these requests, in arrival order."""
        i = self.index[out.rid]
        self.last_time[i] = self.metrics.on_output(self.start, self.last_time[i], out)
        if out.finish_reason is not None:
            self.unfinished.discard(out.rid)
        self._outputs.append((i, out))
        self._event.set()

    def fail(self, exc: BaseException) -> None:
        """End the generation with ``exc``, raised by the pending or next :meth:`next`."""
        if self._error is None:
            self._error = exc
        self._event.set()

    async def next(self) -> list[tuple[int, RequestOutput]]:
        """The outputs that arrived since the last call, as ``(choice index, output)``, at most one per
        choice (a slow consumer gets bigger deltas, not more of them); waits for at least one. A choice's first
        output (the engine's acceptance) is returned alone; what followed it waits for the next call. Raises
        :class:`APIError` (rejected, workers gone) or :class:`ClientGone`."""
        while not self._outputs:
            if self._error is not None:
                raise self._error
            await self._event.wait()
            self._event.clear()
        outs, self._outputs = self._outputs, []
        ready: dict[int, RequestOutput] = {}
        for i, out in outs:
            if i not in ready:
                ready[i] = out
            elif self._handed[i] or ready[i].token_ids:
                ready[i] = _merge(ready[i], out)
            else:  # this choice's acceptance leaves alone (a stream's first event); the rest waits
                self._outputs.append((i, out))
        for i in ready:
            self._handed[i] = True
        if self._outputs:
            self._event.set()
        return list(ready.items())

    def watch_disconnect(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Abort when the ASGI ``receive`` reports that the client went away."""

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not self.finished:
                self.fail(ClientGone())
                self.close()

        self._watcher = asyncio.ensure_future(watch())

    def close(self) -> None:
        """Forget this generation; abort what is still running. Idempotent."""
        if self._watcher is not None and self._watcher is not asyncio.current_task():
            self._watcher.cancel()
        self.forget(self)


def _merge(a: RequestOutput, b: RequestOutput) -> RequestOutput:
    """One output covering ``a`` then ``b`` (of the same request)."""
    logprobs = (a.logprobs or []) + (b.logprobs or []) if a.logprobs is not None or b.logprobs is not None else None
    return RequestOutput(
        b.rid, a.text + b.text, a.token_ids + b.token_ids, b.finish_reason, b.prompt_tokens, b.completion_tokens,
        b.cached_tokens, logprobs, b.matched_stop, a.prompt_text or b.prompt_text,
        a.prompt_logprobs or b.prompt_logprobs,
    )  # fmt: skip
