"""The ``minisgl serve`` and ``minisgl shell`` subcommands (argument parsing; the work is imported lazily)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from minisgl_core.server.args import add_server_args, server_args_from


def _add_shell_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("shell sampling")
    g.add_argument("--max-tokens", type=int, default=256, help="longest reply")
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=-1)
    g.add_argument("--sampling-seed", type=int, default=None, help="seed of every reply (reproducible)")
    g.add_argument("--system", default=None, help="system prompt")


def _shell_settings(args: argparse.Namespace) -> Any:
    from minisgl_core.shell import ShellSettings

    return ShellSettings(
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        seed=args.sampling_seed, system=args.system,
    )  # fmt: skip


def _shell_over(config: Any, server_args: Any, args: argparse.Namespace) -> int:
    """Start the server in this process, run the shell against it, stop the server."""
    from minisgl_core.server.launch import ServerThread
    from minisgl_core.server.threads import use_one_torch_thread
    from minisgl_core.shell import ChatClient, run_shell

    use_one_torch_thread()  # neither the shell nor the API server does tensor math
    server = ServerThread(config, server_args)
    try:
        url = server.start()
        model = server_args.served_model_name or config.model
        return run_shell(ChatClient(url, model, server_args.api_key), _shell_settings(args))
    finally:
        server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    from minisgl_core.cli import config_from_args

    config = config_from_args(args)
    if config.node_rank > 0:  # another node of a multi-node TP group: run its ranks, serve nothing
        from minisgl_core.engine.tp_worker import run_node

        return run_node(config)
    server_args = server_args_from(args)
    server_args.log_level = args.log_level
    if args.shell:
        return _shell_over(config, server_args, args)
    from minisgl_core.server.launch import run_server

    return run_server(config, server_args)


def _cmd_shell(args: argparse.Namespace) -> int:
    from minisgl_core.cli import config_from_args

    config = config_from_args(args)
    server_args = server_args_from(args)
    server_args.port, server_args.log_interval = 0, 0.0
    server_args.log_level = "WARNING" if args.log_level.upper() == "INFO" else args.log_level
    logging.getLogger().setLevel(server_args.log_level.upper())
    return _shell_over(config, server_args, args)


def add_serving_commands(sub: Any, add_engine_args: Any) -> None:
    """Register ``serve`` and ``shell`` on the ``minisgl`` subparsers."""
    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    add_engine_args(serve)
    add_server_args(serve)
    serve.add_argument("--shell", action="store_true", help="also open the interactive chat shell")
    _add_shell_args(serve)
    serve.set_defaults(func=_cmd_serve)

    shell = sub.add_parser("shell", help="chat with a model in an interactive shell")
    add_engine_args(shell)
    _add_shell_args(shell)
    shell.set_defaults(func=_cmd_shell)
