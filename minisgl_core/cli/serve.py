"""``minisgl serve`` (the OpenAI-compatible server) and ``minisgl shell`` (chat in the terminal, over a server
started in this process). The server itself is imported only when one of them runs."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from minisgl_core.cli.commands import add_engine_settings, add_sampling_settings, engine_config_from, sampling_from
from minisgl_core.cli.flags import add_settings, settings_from
from minisgl_core.config import EngineConfig, ServerArgs


def add_serving_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``serve`` and ``shell`` on the ``minisgl`` subparsers."""
    serve = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API", parents=[common])
    add_engine_settings(serve)
    add_settings(serve, ServerArgs, "server")
    serve.add_argument("--shell", action="store_true", help="also open the interactive chat shell")
    _add_shell_args(serve)
    serve.set_defaults(func=_cmd_serve)

    shell = sub.add_parser("shell", help="chat with a model in an interactive shell", parents=[common])
    add_engine_settings(shell)
    _add_shell_args(shell)
    shell.set_defaults(func=_cmd_shell)


def _add_shell_args(parser: argparse.ArgumentParser) -> None:
    add_sampling_settings(parser, "shell replies (default: the server's)")
    parser.add_argument("--system", default=None, help="system prompt of the shell's conversation")


def _shell_over(config: EngineConfig, server_args: ServerArgs, args: argparse.Namespace) -> int:
    """Start the server in this process, run the shell against it, stop the server."""
    from minisgl_core.server.launch import ServerThread
    from minisgl_core.server.shell import ChatClient, ShellSettings, run_shell
    from minisgl_core.server.threads import use_one_torch_thread

    use_one_torch_thread()  # neither the shell nor the API server does tensor math
    server = ServerThread(config, server_args)
    try:
        url = server.start()
        model = server_args.served_model_name or config.model
        settings = ShellSettings(sampling=sampling_from(args), system=args.system)
        return run_shell(ChatClient(url, model, server_args.api_key), settings)
    finally:
        server.stop()


def _cmd_serve(args: argparse.Namespace) -> int:
    config = engine_config_from(args)
    if config.node_rank > 0:  # another node of a multi-node TP group: run its ranks, serve nothing
        from minisgl_core.engine.tp_worker import run_node

        return run_node(config)
    server_args = ServerArgs(**settings_from(args, ServerArgs), log_level=args.log_level)
    if args.shell:
        return _shell_over(config, server_args, args)
    from minisgl_core.server.launch import run_server

    return run_server(config, server_args)


def _cmd_shell(args: argparse.Namespace) -> int:
    config = engine_config_from(args)
    level = "WARNING" if args.log_level.upper() == "INFO" else args.log_level
    logging.getLogger().setLevel(level.upper())
    return _shell_over(config, ServerArgs(port=0, log_interval=0.0, log_level=level), args)
