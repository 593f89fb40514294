"""The interactive shell, driven through a pseudo-terminal: it answers, keeps history, /reset forgets,
/exit leaves."""

from __future__ import annotations

import os
import sys

import pytest

pexpect = pytest.importorskip("pexpect")

STATS = r"\[(\d+) tokens, [\d.]+ tok/s, context (\d+) tokens\]"


def test_shell_chat_reset_exit(tiny_qwen3) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", OMP_NUM_THREADS="1")
    args = ["-m", "minisgl_core", "shell", "--model", str(tiny_qwen3.path), "--device", "cpu", "--attention", "torch"]
    args += ["--max-tokens", "6", "--temperature", "0", "--max-model-len", "512"]
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
    try:
        child.expect("minisgl shell")
        child.expect(">>>")

        def say(text: str) -> int:
            child.sendline(text)
            child.expect(STATS)
            generated, context = map(int, child.match.groups())
            assert generated == 6
            child.expect(">>>")
            return context

        first = say("hello")
        second = say("hello")
        assert second > first  # the conversation so far is part of the prompt
        child.sendline("/reset")
        child.expect("conversation cleared")
        child.expect(">>>")
        assert say("hello") == first  # forgotten: same context as a fresh start
        child.sendline("/exit")
        child.expect("bye")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_serve_with_shell_serves_http_too(tiny_qwen3) -> None:
    import urllib.request

    env = dict(os.environ, HF_HUB_OFFLINE="1", PROMPT_TOOLKIT_NO_CPR="1", TERM="xterm", OMP_NUM_THREADS="1")
    args = ["-m", "minisgl_core", "serve", "--shell", "--port", "0", "--model", str(tiny_qwen3.path)]
    args += [
        "--device",
        "cpu",
        "--attention",
        "torch",
        "--max-tokens",
        "5",
        "--temperature",
        "0",
        "--log-interval",
        "0",
    ]
    child = pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
    try:
        child.expect(r"minisgl ready: (http://\S+)")
        url = child.match.group(1)
        child.expect(">>>")
        with urllib.request.urlopen(url + "/health", timeout=10) as resp:
            assert resp.status == 200
        child.sendline("hi")
        child.expect(STATS)
        child.expect(">>>")
        child.sendeof()  # Ctrl-D leaves
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
