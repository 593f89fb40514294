"""``minisgl generate`` (offline generation) and ``minisgl plugins`` (what is installed)."""

from __future__ import annotations

import argparse
from typing import Any

from minisgl_core.cli.flags import add_settings, settings_from
from minisgl_core.config import EngineConfig
from minisgl_core.contracts.sampling import SamplingParams
from minisgl_core.plugins import KINDS, failed_plugins, loaded_plugins, registry


def engine_config_from(args: argparse.Namespace) -> EngineConfig:
    """The :class:`EngineConfig` the engine flags in ``args`` describe."""
    return EngineConfig(**settings_from(args, EngineConfig))


def add_engine_settings(parser: argparse.ArgumentParser) -> None:
    add_settings(parser, EngineConfig, "engine", required=("model",))


SAMPLING = "sampling_"
"""Prefix of the sampling settings' argparse destinations (``seed`` is also an engine setting)."""


def add_sampling_settings(parser: argparse.ArgumentParser, title: str) -> None:
    add_settings(parser, SamplingParams, title, unset=True, prefix=SAMPLING)


def sampling_from(args: argparse.Namespace) -> dict[str, Any]:
    """The sampling settings given on the command line (those not given are left out)."""
    return settings_from(args, SamplingParams, given_only=True, prefix=SAMPLING)


def add_generate_command(sub: Any, common: argparse.ArgumentParser) -> None:
    gen = sub.add_parser("generate", help="generate text for prompts offline", parents=[common])
    add_engine_settings(gen)
    gen.add_argument("--prompt", action="append", default=None, help="prompt text (repeatable)")
    add_sampling_settings(gen, "sampling (default: the model's generation config, then SamplingParams')")
    gen.set_defaults(func=_cmd_generate)


def _cmd_generate(args: argparse.Namespace) -> int:
    from minisgl_core.llm import LLM

    llm = LLM(**engine_config_from(args).to_dict())
    params = SamplingParams(**{**llm.generation_defaults, **sampling_from(args)})
    prompts = args.prompt or ["Hello, my name is"]
    for prompt, out in zip(prompts, llm.generate(prompts, params)):
        print(f"prompt: {prompt!r}")
        print(f"output: {out.text!r}")
        print(f"tokens: {len(out.token_ids)}  finish_reason: {out.finish_reason}")
    return 0


def add_plugins_command(sub: Any, common: argparse.ArgumentParser) -> None:
    cmd = sub.add_parser("plugins", help="list loaded plugins, what they register, and load failures", parents=[common])
    cmd.set_defaults(func=_cmd_plugins)


def _cmd_plugins(args: argparse.Namespace) -> int:
    for info in loaded_plugins():
        print(f"{info.name}  ({info.distribution} {info.version})")
        for kind in KINDS.values():
            names = info.registered.get(kind.name)
            if names:
                print(f"    {kind.plural}: {', '.join(names)}")
    for kind in KINDS.values():
        for key, entries in registry(kind.name).conflicts().items():
            owners = ", ".join(f"{e.plugin} ({e.distribution})" for e in entries)
            print(f"CONFLICT  {kind.label} {key!r} registered by: {owners}")
    failures = failed_plugins()
    if failures:
        print("failed to load:")
        for failure in failures:
            print(f"    {failure.plugin}: {failure.error}")
    return 0
