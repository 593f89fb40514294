"""The true bytes of one token (OpenAI's logprob ``bytes``), even when a token is part of a UTF-8
character and decodes to U+FFFD on its own."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@functools.cache
def _unicode_to_byte() -> dict[str, int]:
    """The inverse of the GPT-2 byte-level alphabet (each byte shown as one printable character)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    shift = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + shift)
            shift += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def _decoder_kinds(tokenizer: Any) -> set[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    try:
        decoder = json.loads(backend.to_str()).get("decoder") or {}
    except (ValueError, AttributeError):
        return set()
    parts = decoder.get("decoders", [decoder]) if decoder.get("type") == "Sequence" else [decoder]
    return {str(p.get("type")) for p in parts if isinstance(p, dict)}


def token_bytes_fn(tokenizer: Any) -> Callable[[int], bytes]:
    """A function ``token id -> bytes`` for ``tokenizer``: byte-level BPE pieces are mapped back to their
    bytes, SentencePiece byte-fallback pieces (``<0xE4>``) to their byte, ``▁`` to a space; special tokens
    and anything else to the UTF-8 of their decoded text."""
    byte_level = "ByteLevel" in _decoder_kinds(tokenizer)
    table = _unicode_to_byte()
    added = set(getattr(tokenizer, "added_tokens_decoder", {}) or {})

    def token_bytes(token_id: int) -> bytes:
        piece = tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str) or token_id in added:
            return tokenizer.decode([token_id], skip_special_tokens=False).encode("utf-8")
        if byte_level and all(ch in table for ch in piece):
            return bytes(table[ch] for ch in piece)
        match = _BYTE_PIECE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        if not byte_level and "▁" in piece:
            return piece.replace("▁", " ").encode("utf-8")
        return tokenizer.decode([token_id], skip_special_tokens=False).encode("utf-8")

    return token_bytes
