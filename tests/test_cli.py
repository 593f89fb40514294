"""The ``minisgl`` command line."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minisgl_core", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_installed_plugins() -> None:
    result = run("generate", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert re.search(r"or auto \(default: auto\) \(installed: [^)]*torch", text)
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


def test_policy_options_parse_into_the_engine_config() -> None:
    from minisgl_core.cli import build_parser
    from minisgl_core.cli.commands import engine_config_from

    parser = build_parser()
    for command in ("generate", "serve", "shell"):
        args = parser.parse_args(
            [command, "--model", "demo", "--cache", "radix", "--cache-option", "max_tokens=1000",
             "--scheduler-option", "window=8", "--scheduler-option", "expr=a=b", "--scheduler-option", "empty="]
        )  # fmt: skip
        config = engine_config_from(args)
        assert config.cache_options == {"max_tokens": "1000"}
        assert config.scheduler_options == {"window": "8", "expr": "a=b", "empty": ""}
    config = engine_config_from(parser.parse_args(["serve", "--model", "demo"]))
    assert config.cache_options == {} and config.scheduler_options == {}


def test_graph_flags_parse_into_the_engine_config() -> None:
    from minisgl_core.cli import build_parser
    from minisgl_core.cli.commands import engine_config_from

    parser = build_parser()
    config = engine_config_from(parser.parse_args(["serve", "--model", "demo"]))
    assert config.cuda_graph_max_bs is None
    config = engine_config_from(parser.parse_args(["serve", "--model", "demo", "--cuda-graph-max-bs", "0"]))
    assert config.cuda_graph_max_bs == 0


def test_malformed_policy_options_are_clean_errors(capsys: pytest.CaptureFixture[str]) -> None:
    from minisgl_core.cli import build_parser

    parser = build_parser()
    cases = {
        ("--cache-option", "max_tokens"): "argument --cache-option: expected KEY=VALUE, got 'max_tokens'",
        ("--scheduler-option", "=8"): "argument --scheduler-option: KEY must be a non-empty string",
        ("--scheduler-option", "a=1", "--scheduler-option", "a=2"): "argument --scheduler-option: 'a' given twice",
    }
    for flags, message in cases.items():
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["serve", "--model", "demo", *flags])
        assert exc.value.code == 2 and message in capsys.readouterr().err
