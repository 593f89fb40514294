"""The ``minisgl new-plugin NAME --kind KIND`` subcommand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from minisgl_core.scaffold.generate import KINDS, PluginNames, new_plugin


def add_new_plugin_command(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Add ``new-plugin`` to the ``minisgl`` subcommands (``common``: the flags every command takes)."""
    cmd = sub.add_parser(
        "new-plugin",
        parents=[common],
        help="write a working plugin package (pyproject, module, conformance test, README)",
        description="Write a minisgl plugin package that passes its own tests as generated.",
    )
    cmd.add_argument("name", help="the name users select, e.g. my-policy (lowercase, digits, hyphens)")
    cmd.add_argument("--kind", choices=KINDS, required=True, help="the extension point the plugin implements")
    cmd.add_argument("--dir", default=None, help="output folder (default: ./minisgl-NAME)")
    cmd.add_argument("--force", action="store_true", help="write into a non-empty folder")
    cmd.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    names = PluginNames.derive(args.name, args.kind)
    try:
        files = new_plugin(args.name, args.kind, args.dir, force=args.force)
    except FileExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    root = Path(args.dir) if args.dir else Path(names.dist)
    print(f"wrote the {args.kind} plugin {names.name!r} ({names.dist}) to {root}:")
    for path in files:
        print(f"    {path.relative_to(root.resolve()) if path.is_absolute() else path.relative_to(root)}")
    print("next:")
    print(f"    cd {root} && pip install -e . && pytest")
    print(f"    minisgl plugins            # {names.name} is listed under {names.dist}")
    for line in names.try_it.splitlines():
        print(f"    {line}")
    return 0
