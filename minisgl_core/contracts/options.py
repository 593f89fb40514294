"""Plugin options: the ``--attention-option`` / ``--cache-option`` / ``--scheduler-option KEY=VALUE`` flags that
reach a factory as ``ctx.options`` (a read-only mapping of strings the plugin parses)."""

from __future__ import annotations

import re
from collections.abc import Mapping

_OPTION_NAME = re.compile(r"[^\s=]+")


def _check_option_name(key: object, what: str) -> None:
    if not isinstance(key, str) or not _OPTION_NAME.fullmatch(key):
        raise ValueError(f"{what} must be a non-empty string without '=' or whitespace, got {key!r}")


def parse_option(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)``, split at the first ``=`` (VALUE may be empty); ``ValueError`` when
    there is no ``=`` or KEY is empty or holds whitespace."""
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    _check_option_name(key, "KEY")
    return key, value


def check_options(name: str, options: object) -> None:
    """Raise ``ValueError`` unless ``options`` maps option names (as :func:`parse_option` accepts) to strings."""
    if not isinstance(options, Mapping):
        raise ValueError(f"{name} must be a mapping of option names to strings, got {type(options).__name__}")
    for key, value in options.items():
        _check_option_name(key, f"a key of {name}")
        if not isinstance(value, str):
            raise ValueError(f"{name}[{key!r}] must be a string (the plugin parses it), got {value!r}")


def reject_options(options: Mapping[str, str], what: str) -> None:
    """For a plugin that takes no options: ``ValueError`` naming the given keys, so a typo fails at start-up."""
    if options:
        raise ValueError(f"{what} takes no options, got {', '.join(sorted(options))}")


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def option_flag(options: Mapping[str, str], key: str, default: bool = False) -> bool:
    """The boolean option ``key`` (``true/false``, ``1/0``, ``yes/no``, ``on/off``, any case), ``default`` when
    it is absent; ``ValueError`` naming the option for any other value, so a typo fails at start-up."""
    value = options.get(key)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ValueError(f"option {key} must be true or false, got {value!r}")
