"""Settings declared once: a dataclass field carries its default, its help text and the other spellings users
bring from vLLM and SGLang. The CLI flags, ``LLM(**kwargs)`` and the docs are generated from these fields.

Field metadata keys (used by EngineConfig, ServerArgs and SamplingParams):

- ``help``: one line for ``--help``;
- ``aliases``: other names (``tensor_parallel_size``): a flag ``--tensor-parallel-size`` and a keyword;
- ``flag``: the primary flag when it is not ``--`` + the field name with dashes;
- ``kind``: the value names a registered plugin of that kind (the CLI lists the installed ones);
- ``choices``: the fixed set of values;
- ``cli``: False for settings that are not command-line flags.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - the argparse spelling
    *,
    aliases: tuple[str, ...] = (),
    flag: str | None = None,
    kind: str | None = None,
    choices: tuple[str, ...] | None = None,
    cli: bool = True,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field with its default (or ``factory``) and the metadata above."""
    metadata = {"help": help, "aliases": aliases, "flag": flag, "kind": kind, "choices": choices, "cli": cli}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def alias_table(cls: type) -> dict[str, str]:
    """``{alias: field name}`` of a settings dataclass."""
    return {alias: f.name for f in dataclasses.fields(cls) for alias in f.metadata.get("aliases", ())}


def canonical_kwargs(cls: type, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with aliases renamed to their field; ``ValueError`` for unknown names and for a setting
    given under two names."""
    aliases = alias_table(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        name = aliases.get(key, key)
        if name not in names:
            raise ValueError(f"unknown {cls.__name__} setting {key!r}")
        if name in out:
            raise ValueError(f"{name!r} given twice (as {name!r} and an alias)")
        out[name] = value
    return out
