"""The ``minisgl`` command: ``generate``, ``plugins``, ``new-plugin`` (more subcommands register below).

Plugins load before the parser is built, so ``--help`` lists the backends, caches and schedulers that are
installed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from minisgl_core.config import DTYPES, LOAD_FORMATS, EngineConfig, parse_option
from minisgl_core.plugins import failed_plugins, load_plugins, loaded_plugins
from minisgl_core.registry import ATTENTION, CACHE, REGISTRIES, SCHEDULER


def _names(kind: str) -> list[str]:
    registry = REGISTRIES[kind]
    return sorted({*registry.names(), *(a for e in registry for a in e.aliases)})


def _attention_arg(value: str) -> str:
    known = {"auto", *_names(ATTENTION)}
    parts = [p.strip() for p in value.split(",")]
    bad = [p for p in parts if p not in known]
    if bad or len(parts) > 2:
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected NAME or PREFILL,DECODE with names from {', '.join(sorted(known))}"
        )
    return value


class _OptionAction(argparse.Action):
    """Collects a repeatable ``KEY=VALUE`` flag into a dict; a malformed or repeated KEY is an error."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> None:
        try:
            key, value = parse_option(str(values))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        options = getattr(namespace, self.dest) or {}
        if key in options:
            raise argparse.ArgumentError(self, f"{key!r} given twice")
        setattr(namespace, self.dest, {**options, key: value})


def add_engine_args(parser: argparse.ArgumentParser) -> None:
    """The engine options shared by every subcommand that runs a model (one flag per EngineConfig field)."""
    g = parser.add_argument_group("engine")
    g.add_argument("--model", required=True, help="local folder, Hugging Face hub id, or 'demo'")
    g.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default: the model's)")
    g.add_argument(
        "--attention", type=_attention_arg, default="auto",
        help=f"attention backend, or PREFILL,DECODE; installed: auto, {', '.join(_names(ATTENTION))}",
    )  # fmt: skip
    g.add_argument("--cache", choices=_names(CACHE), default="radix", help="KV-cache policy")
    g.add_argument(
        "--cache-option", dest="cache_options", action=_OptionAction, default={}, metavar="KEY=VALUE",
        help="an option for the cache policy (repeatable), given to it as a string",
    )  # fmt: skip
    g.add_argument("--scheduler", choices=_names(SCHEDULER), default="fcfs", help="scheduling policy")
    g.add_argument(
        "--scheduler-option", dest="scheduler_options", action=_OptionAction, default={}, metavar="KEY=VALUE",
        help="an option for the scheduling policy (repeatable), given to it as a string",
    )  # fmt: skip
    g.add_argument("--dtype", choices=DTYPES, default="auto")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    g.add_argument("--page-size", type=int, default=1)
    g.add_argument("--max-prefill-tokens", type=int, default=8192, help="prefill tokens per step (chunk size)")
    g.add_argument("--max-running-requests", type=int, default=256)
    g.add_argument("--max-model-len", type=int, default=None, help="longest prompt + output (default: model's)")
    g.add_argument("--num-kv-tokens", type=int, default=None, help="KV-cache size in tokens (default: from memory)")
    g.add_argument("--kv-memory-fraction", type=float, default=0.85, help="share of free GPU memory for KV")
    g.add_argument("--load-format", choices=LOAD_FORMATS, default="auto", help="'dummy' = random weights")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--disable-overlap", action="store_true", help="read each step's results before the next")
    g.add_argument("--cuda-graph-max-bs", type=int, default=None, help="largest CUDA-graph decode batch (0 = off)")
    g.add_argument("--prefill-graph", action="store_true", help="replay full prefill chunks from a CUDA graph (opt-in)")
    g.add_argument("--tp", type=int, default=1, help="tensor-parallel size (one engine process per rank)")
    g.add_argument("--nnodes", type=int, default=1, help="nodes the tensor-parallel group spans")
    g.add_argument("--node-rank", type=int, default=0, help="this node's index (0 schedules and serves)")
    g.add_argument("--dist-init-addr", default=None, help="HOST:PORT of node 0 for the torch.distributed rendezvous")
    g.add_argument("--revision", default=None, help="hub revision")


def config_from_args(args: argparse.Namespace) -> EngineConfig:
    values = {f.name: getattr(args, f.name) for f in fields(EngineConfig) if hasattr(args, f.name)}
    return EngineConfig(**values)


def _cmd_generate(args: argparse.Namespace) -> int:
    from minisgl_core.llm import LLM
    from minisgl_core.sampling_params import SamplingParams

    config = config_from_args(args)
    llm = LLM(**config.to_dict())
    params = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, max_tokens=args.max_tokens,
        seed=args.sampling_seed, ignore_eos=args.ignore_eos,
    )  # fmt: skip
    outputs = llm.generate(args.prompt, params)
    for prompt, out in zip(args.prompt, outputs):
        print(f"prompt: {prompt!r}")
        print(f"output: {out.text!r}")
        print(f"tokens: {len(out.token_ids)}  finish_reason: {out.finish_reason}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    kinds = {
        ATTENTION: "attention backends",
        CACHE: "cache policies",
        SCHEDULER: "schedulers",
        "model": "models",
    }
    for info in loaded_plugins():
        print(f"{info.name}  ({info.distribution} {info.version})")
        for kind, label in kinds.items():
            names = info.registered.get(kind)
            if names:
                print(f"    {label}: {', '.join(names)}")
    for registry in REGISTRIES.values():
        for name, owners in registry.conflicts().items():
            print(f"CONFLICT  {registry.label} {name!r} registered by: {', '.join(owners)}")
    failures = failed_plugins()
    if failures:
        print("failed to load:")
        for failure in failures:
            print(f"    {failure.plugin}: {failure.error}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    load_plugins()
    parser = argparse.ArgumentParser(prog="minisgl", description="minisgl: a small plugin-based LLM engine")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate text for prompts offline")
    add_engine_args(gen)
    gen.add_argument("--prompt", action="append", default=None, help="prompt text (repeatable)")
    gen.add_argument("--max-tokens", type=int, default=32)
    gen.add_argument("--temperature", type=float, default=0.0)
    gen.add_argument("--top-p", type=float, default=1.0)
    gen.add_argument("--top-k", type=int, default=-1)
    gen.add_argument("--sampling-seed", type=int, default=None)
    gen.add_argument("--ignore-eos", action="store_true")
    gen.set_defaults(func=_cmd_generate)

    plugins = sub.add_parser("plugins", help="list loaded plugins, what they register, and load failures")
    plugins.set_defaults(func=_cmd_plugins)

    from minisgl_core.scaffold.command import add_new_plugin_command

    add_new_plugin_command(sub)  # new-plugin

    from minisgl_core.server.commands import add_serving_commands

    add_serving_commands(sub, add_engine_args)  # serve, shell
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "command", None) == "generate" and not args.prompt:
        args.prompt = ["Hello, my name is"]
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
