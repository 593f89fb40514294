"""The ``minisgl`` command line."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minisgl_core", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_installed_plugins() -> None:
    result = run("generate", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "installed: auto," in text and "torch" in text.split("installed: auto,")[1]
    assert "{naive,radix}" in result.stdout
    assert "{fcfs}" in result.stdout or "{fcfs,lpm}" in result.stdout  # plugins/minisgl-lpm, when installed


def test_generate_with_the_demo_model() -> None:
    result = run("generate", "--model", "demo", "--device", "cpu", "--max-tokens", "6", "--prompt", "Hi")
    assert result.returncode == 0, result.stderr
    assert "prompt: 'Hi'" in result.stdout and "tokens: 6" in result.stdout


def test_bad_flag_value_is_a_clean_error() -> None:
    result = run("generate", "--model", "demo", "--attention", "nope")
    assert result.returncode == 2 and "expected NAME or PREFILL,DECODE" in result.stderr
    result = run("generate", "--model", "demo", "--device", "cpu", "--page-size", "0")
    assert result.returncode == 2 and "page_size must be a positive integer" in result.stderr
