"""Reasoning blocks delimited by tags (``<think>...</think>``): the ``qwen3`` and ``deepseek-r1`` parsers.

``qwen3``: the output opens the block itself (``<think>`` first, after optional whitespace); output that does
not start with it is all content. ``deepseek-r1``: the prompt already opened the block, so the output starts
as reasoning (a leading ``<think>`` is skipped) until ``</think>``. Both: whitespace around the reasoning and
before the content is dropped; output that ends inside the block is all reasoning; with thinking turned off
the output is all content.
"""

from __future__ import annotations

from minisgl_core.contracts.parsers import ReasoningContext, ReasoningDelta, ReasoningParser

_BEFORE, _REASONING, _AFTER, _CONTENT = range(4)


def partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is a proper beginning of ``tag`` (to hold back)."""
    for k in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:k]):
            return k
    return 0


class ThinkTagParser(ReasoningParser):
    """Splits ``start`` ... ``end`` off the output; ``opened``: the prompt already opened the block."""

    def __init__(self, ctx: ReasoningContext, start: str = "<think>", end: str = "</think>", opened: bool = False):
        self.start, self.end, self.opened = start, end, opened
        self.state = _BEFORE if ctx.thinking else _CONTENT
        self.buf = ""
        self.reasoning_started = False

    def feed(self, text: str) -> ReasoningDelta:
        self.buf += text
        out = ReasoningDelta()
        while True:
            before = (self.state, len(self.buf))
            self._step(out)
            if (self.state, len(self.buf)) == before:
                return out

    def _step(self, out: ReasoningDelta) -> None:
        if self.state == _BEFORE:
            head = self.buf.lstrip()
            if head.startswith(self.start):
                self.buf, self.state = head[len(self.start) :], _REASONING
            elif head and not self.start.startswith(head):
                self.state = _REASONING if self.opened else _CONTENT
        elif self.state == _REASONING:
            if not self.reasoning_started:
                self.buf = self.buf.lstrip()
                self.reasoning_started = bool(self.buf)
            at = self.buf.find(self.end)
            if at >= 0:
                out.reasoning += self.buf[:at].rstrip()
                self.buf, self.state = self.buf[at + len(self.end) :], _AFTER
            else:
                keep = len(self.buf) - partial_suffix(self.buf, self.end)
                keep = len(self.buf[:keep].rstrip())  # trailing whitespace waits: it may precede the end tag
                out.reasoning += self.buf[:keep]
                self.buf = self.buf[keep:]
        elif self.state == _AFTER:
            self.buf = self.buf.lstrip()
            if self.buf:
                self.state = _CONTENT
        else:
            out.content += self.buf
            self.buf = ""

    def finish(self) -> ReasoningDelta:
        out = ReasoningDelta()
        if self.state == _BEFORE:
            if self.opened:
                out.reasoning = self.buf.strip()
            else:
                out.content = self.buf
        elif self.state == _REASONING:
            out.reasoning = self.buf.rstrip()
        elif self.state == _CONTENT:
            out.content = self.buf
        self.buf = ""
        return out


def qwen3(ctx: ReasoningContext) -> ReasoningParser:
    """Qwen3: ``<think>`` opens the output when the model thinks."""
    return ThinkTagParser(ctx)


def deepseek_r1(ctx: ReasoningContext) -> ReasoningParser:
    """DeepSeek-R1 (and QwQ): the template opened ``<think>``; the output is reasoning until ``</think>``."""
    return ThinkTagParser(ctx, opened=True)
