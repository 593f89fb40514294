"""Command-line flags generated from settings dataclasses (:class:`EngineConfig`, :class:`ServerArgs`,
:class:`SamplingParams`): one flag per field, its aliases as more spellings, its default the field's own."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Callable
from typing import Any

from minisgl_core.contracts.options import parse_option
from minisgl_core.plugins import ATTENTION, registry


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


def _plugin_names(kind: str) -> list[str]:
    return registry(kind).keys()


def _attention_arg(value: str) -> str:
    known = {"auto", *_plugin_names(ATTENTION)}
    parts = [p.strip() for p in value.split(",")]
    if len(parts) > 2 or any(p not in known for p in parts):
        raise argparse.ArgumentTypeError(
            f"{value!r}: expected NAME or PREFILL,DECODE with names from {', '.join(sorted(known))}"
        )
    return value


def _value_type(annotation: Any) -> Callable[[str], Any]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return args[0] if args[0] in (int, float) else str


def add_settings(
    parser: argparse.ArgumentParser,
    cls: type,
    title: str,
    *,
    required: tuple[str, ...] = (),
    unset: bool = False,
    prefix: str = "",
) -> None:
    """Add a flag for every CLI field of the dataclass ``cls``, stored as ``prefix + field name``. With
    ``unset`` every default is ``None`` (the flag was not given) instead of the field's default, for settings
    that have other defaults too."""
    group = parser.add_argument_group(title)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True):
            continue
        flags = [meta.get("flag") or "--" + f.name.replace("_", "-")]
        flags += ["--" + alias.replace("_", "-") for alias in meta.get("aliases", ())]
        kwargs: dict[str, Any] = {"dest": prefix + f.name, "help": meta.get("help") or None}
        hint = hints[f.name]
        default = None if unset or f.default is dataclasses.MISSING else f.default
        if hint is bool:  # on by default: --name and --no-name
            action = argparse.BooleanOptionalAction if f.default is True and not unset else "store_true"
            kwargs.update(action=action, default=default)
        elif typing.get_origin(hint) is dict:
            kwargs.update(action=_OptionAction, default=None, metavar="KEY=VALUE")
        else:
            kwargs.update(type=_value_type(hint), default=default, choices=meta.get("choices"))
            if f.name in required:
                kwargs["required"] = True
        if default is not None and hint is not bool:
            kwargs["help"] = f"{kwargs['help'] or ''} (default: %(default)s)".strip()
        kind = meta.get("kind")
        if kind is not None:
            kwargs["help"] += f" (installed: {', '.join(_plugin_names(kind)) or 'none'})"
            if kind == ATTENTION:
                kwargs["type"] = _attention_arg
            else:
                kwargs["choices"] = _plugin_names(kind)
        group.add_argument(*flags, **kwargs)


def settings_from(args: argparse.Namespace, cls: type, *, given_only: bool = False, prefix: str = "") -> dict[str, Any]:
    """The values of ``cls``'s fields found in ``args`` as :func:`add_settings` stored them (with
    ``given_only``, only those not ``None``); a dict option left empty is omitted so the field's default applies."""
    values = {}
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or not hasattr(args, prefix + f.name):
            continue
        value = getattr(args, prefix + f.name)
        if value is None and (given_only or typing.get_origin(typing.get_type_hints(cls)[f.name]) is dict):
            continue
        values[f.name] = value
    return values
