"""The ``minisgl`` command: ``generate``, ``plugins``, ``new-plugin``, ``serve``, ``shell``.

Plugins load before the parser is built, so ``--help`` lists the backends, caches and schedulers that are
installed. Every flag of a setting comes from its dataclass field (:mod:`minisgl_core.cli.flags`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from minisgl_core.cli.commands import add_generate_command, add_plugins_command
from minisgl_core.cli.serve import add_serving_commands
from minisgl_core.plugins import load_plugins
from minisgl_core.scaffold.command import add_new_plugin_command

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from minisgl_core import __version__

    load_plugins()
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="DEBUG, INFO, WARNING, ... (default: INFO)")
    parser = argparse.ArgumentParser(
        prog="minisgl", description="minisgl: a small plugin-based LLM engine", parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"minisgl {__version__}")
    parser.set_defaults(log_level="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    add_generate_command(sub, common)
    add_plugins_command(sub, common)
    add_new_plugin_command(sub, common)
    add_serving_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    early = argparse.ArgumentParser(add_help=False)  # logging is set up before plugins load and may log
    early.add_argument("--log-level", default="INFO")
    level = getattr(logging, str(early.parse_known_args(argv)[0].log_level).upper(), None)
    logging.basicConfig(
        level=level if isinstance(level, int) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    parser = build_parser()
    args = parser.parse_args(argv)
    if not isinstance(level, int):
        parser.error(f"--log-level: unknown level {args.log_level!r}")
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
