"""``minisgl shell``: an interactive chat REPL that streams replies from a minisgl (or any OpenAI-compatible)
server and keeps the conversation.

Commands: ``/reset`` clears the conversation, ``/exit`` (or Ctrl-D) leaves, ``/help``. Ctrl-C stops a reply
being generated (the server aborts it) and drops that turn. After each reply a status line shows the
tokens generated, the speed and the context the conversation now takes.
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
HELP = "commands: /reset clears the conversation, /exit or Ctrl-D leaves, Ctrl-C stops a reply"


@dataclass
class ShellSettings:
    """What every reply is asked with."""

    sampling: dict[str, Any] = field(default_factory=dict)
    """Request fields (``SamplingParams`` names, e.g. ``temperature``); those left out take the server's
    defaults."""
    system: str | None = None


def printable(text: str) -> str:
    """``text`` without terminal control characters (newlines and tabs stay)."""
    return _CONTROL.sub("\ufffd", text)


class ChatClient:
    """Streams chat completions from ``url`` (``http://host:port``) with the standard library only."""

    def __init__(self, url: str, model: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.model = model
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.usage: dict[str, Any] = {}

    def stream(self, messages: list[dict[str, str]], s: ShellSettings) -> Iterator[str]:
        """Yield the reply's text deltas; afterwards :attr:`usage` holds the token counts."""
        body = {
            **s.sampling, "model": self.model, "messages": messages, "stream": True,
            "stream_options": {"include_usage": True},
        }  # fmt: skip
        self.usage = {}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", "/v1/chat/completions", json.dumps(body), self.headers)
            resp = conn.getresponse()
            if resp.status != 200:
                raise RuntimeError(_error_message(resp.read()))
            for raw in resp:
                line = raw.strip()
                if not line.startswith(b"data: "):
                    continue
                if line == b"data: [DONE]":
                    break
                event = json.loads(line[6:])
                if "error" in event:
                    raise RuntimeError(event["error"].get("message", "error"))
                if event.get("usage"):
                    self.usage = event["usage"]
                for choice in event.get("choices", ()):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        yield text
        finally:
            conn.close()  # closing mid-reply makes the server abort the request


def _error_message(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:200]


def _input_function() -> Callable[[str], str]:
    """prompt_toolkit's line editor on a terminal, plain ``input`` otherwise (pipes, scripts)."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import InMemoryHistory

        session: PromptSession = PromptSession(history=InMemoryHistory())
        return session.prompt
    return input


def run_shell(client: ChatClient, settings: ShellSettings, out: Any = None) -> int:
    """The REPL; returns the exit code."""
    out = out or sys.stdout
    read = _input_function()
    history: list[dict[str, str]] = []
    out.write(f"minisgl shell - model {client.model}. {HELP}\n")
    while True:
        try:
            line = read(">>> ").strip()
        except KeyboardInterrupt:
            continue
        except EOFError:
            break
        if not line:
            continue
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history.clear()
            out.write("(conversation cleared)\n")
            continue
        if line in ("/help", "/?"):
            out.write(HELP + "\n")
            continue
        messages = ([{"role": "system", "content": settings.system}] if settings.system else []) + history
        messages.append({"role": "user", "content": line})
        reply: list[str] = []
        start = time.monotonic()
        try:
            for delta in client.stream(messages, settings):
                reply.append(delta)
                out.write(printable(delta))
                out.flush()
        except KeyboardInterrupt:
            out.write("\n(stopped; this turn is dropped)\n")
            continue
        except (OSError, RuntimeError) as exc:
            out.write(f"\n(error: {exc})\n")
            continue
        history += [messages[-1], {"role": "assistant", "content": "".join(reply)}]
        usage = client.usage
        n = usage.get("completion_tokens", 0)
        elapsed = max(time.monotonic() - start, 1e-6)
        context = usage.get("total_tokens", 0)
        out.write(f"\n[{n} tokens, {n / elapsed:.1f} tok/s, context {context} tokens]\n")
        out.flush()
    out.write("bye\n")
    return 0
