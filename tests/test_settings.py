"""One source of configuration: every default lives on a dataclass field, and the CLI, ``LLM(**kwargs)`` and
the server take it from there; the spellings users bring from vLLM and SGLang work everywhere."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys

import pytest

from minisgl_core import LLM, __version__
from minisgl_core.cli import build_parser
from minisgl_core.cli.commands import engine_config_from
from minisgl_core.config import EngineConfig, ServerArgs
from minisgl_core.contracts import SamplingParams


def _namespace(*argv: str):  # noqa: ANN202
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("command", ["generate", "serve", "shell"])
def test_cli_defaults_are_the_config_defaults_themselves(command: str) -> None:
    args = _namespace(command, "--model", "demo")
    for f in dataclasses.fields(EngineConfig):
        if f.default is dataclasses.MISSING:  # required (model) or built by a factory (options)
            continue
        assert getattr(args, f.name) is f.default, f"--{f.name} has a default of its own"
    if command == "serve":
        for f in dataclasses.fields(ServerArgs):
            if f.metadata.get("cli", True):
                assert getattr(args, f.name) is f.default, f"--{f.name} has a default of its own"
    for f in dataclasses.fields(SamplingParams):  # not given = not set: the request's defaults apply
        if f.metadata.get("cli", True):
            assert getattr(args, "sampling_" + f.name) is None


def test_llm_has_no_defaults_of_its_own() -> None:
    params = inspect.signature(LLM.__init__).parameters
    assert [p.kind for p in params.values()] == [
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_KEYWORD,
    ]  # self, model, **kwargs: every other default is EngineConfig's
    config = EngineConfig.from_kwargs(model="demo")
    defaults = {f.name: f.default for f in dataclasses.fields(EngineConfig) if f.default is not dataclasses.MISSING}
    assert all(getattr(config, name) is value for name, value in defaults.items())


def test_every_setting_has_help_text() -> None:
    for cls in (EngineConfig, ServerArgs, SamplingParams):
        for f in dataclasses.fields(cls):
            if f.metadata.get("cli", True):
                assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"


@pytest.mark.parametrize(
    "flags, field, value",
    [
        (["--tensor-parallel-size", "2"], "tp", 2),
        (["--tp-size", "2"], "tp", 2),
        (["--context-length", "128"], "max_model_len", 128),
        (["--gpu-memory-utilization", "0.5"], "gpu_memory_utilization", 0.5),
        (["--mem-fraction-static", "0.7"], "gpu_memory_utilization", 0.7),
    ],
)
def test_vllm_and_sglang_flag_spellings(flags: list[str], field: str, value: object) -> None:
    config = engine_config_from(_namespace("serve", "--model-path", "demo", *flags))
    assert config.model == "demo" and getattr(config, field) == value


def test_vllm_keyword_spellings_and_clear_errors() -> None:
    config = EngineConfig.from_kwargs(model="demo", tensor_parallel_size=2, context_length=64, mem_fraction_static=0.8)
    assert (config.tp, config.max_model_len, config.gpu_memory_utilization) == (2, 64, 0.8)
    with pytest.raises(ValueError, match="given twice"):
        EngineConfig.from_kwargs(model="demo", tp=2, tensor_parallel_size=2)
    with pytest.raises(ValueError, match="unknown EngineConfig setting 'bogus'"):
        EngineConfig.from_kwargs(model="demo", bogus=1)
    with pytest.raises(ValueError, match="gpu_memory_utilization must be in"):
        EngineConfig.from_kwargs(model="demo", gpu_memory_utilization=1.5)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minisgl_core", *args], capture_output=True, text=True, timeout=300)


def test_version_and_log_level_on_every_command() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"minisgl {__version__}"
    for command in ("generate", "serve", "shell", "plugins", "new-plugin"):
        assert "--log-level" in run(command, "--help").stdout, command
    quiet = run("generate", "--log-level", "warning", "--model", "demo", "--device", "cpu", "--max-tokens", "2")
    assert quiet.returncode == 0 and "INFO" not in quiet.stderr
    loud = run("--log-level", "info", "generate", "--model", "demo", "--device", "cpu", "--max-tokens", "2")
    assert loud.returncode == 0 and "INFO minisgl" in loud.stderr
    bad = run("plugins", "--log-level", "chatty")
    assert bad.returncode == 2 and "unknown level 'chatty'" in bad.stderr


def test_sampling_flags_of_generate() -> None:
    args = _namespace("generate", "--model", "demo", "--temperature", "0", "--sampling-seed", "7", "--ignore-eos")
    from minisgl_core.cli.commands import sampling_from

    assert sampling_from(args) == {"temperature": 0.0, "seed": 7, "ignore_eos": True}
    assert engine_config_from(args).seed == 0  # the engine's --seed is another setting
