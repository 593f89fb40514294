"""Scanning JSON text that is still arriving: where a value ends, and a tool call's head (its name)."""

from __future__ import annotations

import re

CALL_HEAD = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:arguments|parameters)"\s*:\s*')
"""``{"name": "NAME", "arguments": `` (or ``"parameters"``, Llama 3's spelling), up to the value."""


def value_end(text: str, i: int = 0) -> int | None:
    """The index just past the JSON value that starts at ``text[i]`` (after whitespace), or ``None`` while
    it is incomplete. Only the value's extent is found; its validity is checked later by ``json.loads``."""
    n = len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i >= n:
        return None
    if text[i] == '"':
        return _string_end(text, i)
    if text[i] not in "{[":
        j = i
        while j < n and text[j] not in ",}] \t\r\n":
            j += 1
        return j if j < n else None
    depth = 0
    while i < n:
        c = text[i]
        if c == '"':
            end = _string_end(text, i)
            if end is None:
                return None
            i = end
            continue
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def _string_end(text: str, i: int) -> int | None:
    """Index past the string literal opening at ``text[i]``, or ``None`` when it is not closed yet."""
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i + 1
        i += 1
    return None
