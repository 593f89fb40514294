"""The streaming machinery shared by the JSON tool-call formats: content, then calls, each parsed as it
arrives. A format says where a call starts (:meth:`find_start`), which text might still become a start
(:meth:`hold_from`) and where a call ends (:meth:`find_end`).

A call is streamed as OpenAI does: its id and name first (once ``{"name": "...", "arguments":`` is read),
then its arguments' JSON text as it arrives, exactly as the model wrote it. A complete call that is not
valid JSON, or names a tool the request does not offer (or not the one ``tool_choice`` names), is returned
as plain content, with its tags. A call whose name was already streamed stays a call (only streaming
sends a name before the call is complete; a non-streaming answer checks the whole call first). An output cut
off inside a call (length limit) keeps the call, with the arguments written so far, once its name was read.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from minisgl_core.builtin.parsers.json_scan import CALL_HEAD, value_end
from minisgl_core.contracts.parsers import ToolCallDelta, ToolDelta, ToolParser, ToolParserContext


def call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def allowed_names(ctx: ToolParserContext) -> set[str]:
    """The function names a call may use: the named one, or every tool of the request."""
    choice = ctx.tool_choice
    if isinstance(choice, dict):
        return {str(choice.get("function", {}).get("name"))}
    return {str(t.get("function", {}).get("name")) for t in ctx.tools}


class JSONToolStream(ToolParser):
    """Content and ``{"name": ..., "arguments": {...}}`` calls; subclasses define the framing."""

    separators = " \t\r\n"
    """Characters dropped between calls."""
    strip_before_calls = False
    """Drop :attr:`separators` before the first call too (a format that wraps its calls, e.g. in ``[...]``)."""

    def __init__(self, ctx: ToolParserContext) -> None:
        self.allowed = allowed_names(ctx)
        self.buf = ""
        self.pending = ""  # trailing whitespace of content, dropped if a call follows
        self.in_call = False
        self.index = 0  # of the next call
        self.marker = ""
        self.body = ""
        self.args_start = -1  # body index where the arguments begin once the head was streamed
        self.args_sent = 0  # body index up to which arguments were streamed

    # -- the format ----------------------------------------------------------------------------------------

    def find_start(self, text: str) -> tuple[int, int] | None:
        """``(where the call's marker begins, where its JSON body begins)`` in ``text``, or ``None``."""
        raise NotImplementedError

    def hold_from(self, text: str) -> int:
        """The index from which ``text`` might still become a call's start (``len(text)``: none)."""
        raise NotImplementedError

    def find_end(self, body: str) -> tuple[int, int] | None:
        """``(end of the call's JSON, end of the text the call consumes)`` in ``body``, or ``None``."""
        raise NotImplementedError

    def hold_tail(self, body: str) -> int:
        """How many characters at the end of an unfinished ``body`` might begin its end marker."""
        return 0

    # -- the stream ----------------------------------------------------------------------------------------

    def feed(self, text: str) -> ToolDelta:
        out = ToolDelta()
        self.buf += text
        while self.buf:
            if self.in_call:
                self.body += self.buf
                self.buf = ""
                end = self.find_end(self.body)
                if end is None:
                    self._stream_call(out)
                    break
                self._close_call(out, end)
            else:
                start = self.find_start(self.buf)
                if start is None:
                    hold = self.hold_from(self.buf)
                    self._content(out, self.buf[:hold])
                    self.buf = self.buf[hold:]
                    break
                self._content(out, self.buf[: start[0]], call_follows=True)
                self.marker, self.body = self.buf[start[0] : start[1]], ""
                self.buf, self.in_call, self.args_start, self.args_sent = self.buf[start[1] :], True, -1, 0
                if not self.buf:
                    break
        return out

    def finish(self) -> ToolDelta:
        out = ToolDelta()
        if self.in_call:
            if self.args_start >= 0:
                self._stream_call(out)
                self.index += 1
            else:
                self._content(out, self.marker + self.body)
        else:
            self._content(out, self.buf)
        self.buf = self.body = self.pending = ""
        self.in_call = False
        return out

    def _content(self, out: ToolDelta, text: str, call_follows: bool = False) -> None:
        text = self.pending + text
        if self.index > 0 or self.strip_before_calls:  # separators between calls are not content
            text = text.lstrip(self.separators)
        kept = text.rstrip()
        out.content += kept
        self.pending = "" if call_follows else text[len(kept) :]

    def _stream_call(self, out: ToolDelta) -> None:
        if self.args_start < 0:
            head = CALL_HEAD.match(self.body)
            if head is None or head.end() == len(self.body) or _unescape(head.group(1)) not in self.allowed:
                return  # the value must have begun: whitespace before it may still grow
            name = _unescape(head.group(1))
            out.calls.append(ToolCallDelta(self.index, call_id(), name))
            self.args_start = self.args_sent = head.end()
        if self.args_sent >= len(self.body) or self.body[self.args_start : self.args_start + 1] not in '{["':
            return  # a bare number or literal is sent when complete
        end = value_end(self.body, self.args_start)
        upto = len(self.body) - self.hold_tail(self.body) if end is None else end
        if upto > self.args_sent:
            self._args(out, self.body[self.args_sent : upto])
            self.args_sent = upto

    def _args(self, out: ToolDelta, text: str) -> None:
        if out.calls and out.calls[-1].index == self.index:
            out.calls[-1].arguments += text
        else:
            out.calls.append(ToolCallDelta(self.index, arguments=text))

    def _close_call(self, out: ToolDelta, end: tuple[int, int]) -> None:
        text, rest = self.body[: end[0]], self.body[end[1] :]
        call = _parse_call(text)
        if self.args_start < 0 and call is not None:
            self._stream_call(out)  # what streaming would have sent, so whole and streamed text agree
        if self.args_start >= 0:  # streamed: finish the arguments as written
            value = value_end(text, self.args_start)
            upto = len(text) if value is None else value
            if upto > self.args_sent:
                self._args(out, text[self.args_sent : upto])
            self.index += 1
        elif call is not None and call[0] in self.allowed:
            out.calls.append(ToolCallDelta(self.index, call_id(), call[0], call[1]))
            self.index += 1
        else:
            self._content(out, self.marker + self.body[: end[1]])
        self.in_call, self.body, self.buf = False, "", rest + self.buf


def _unescape(name: str) -> str:
    try:
        return json.loads(f'"{name}"')
    except ValueError:
        return name


def _parse_call(text: str) -> tuple[str, str] | None:
    """``(name, arguments JSON)`` of a complete call's JSON text, or ``None`` when it is not a call."""
    try:
        obj: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        return None
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            json.loads(args)
        except ValueError:
            return None
        return obj["name"], args
    return obj["name"], json.dumps(args, ensure_ascii=False)
