"""Loading a model's tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_tokenizer(path: str | Path) -> Any:
    """The Hugging Face tokenizer stored in ``path`` (``ValueError`` when there is none)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # noqa: BLE001 - transformers raises many kinds
        raise ValueError(f"cannot load a tokenizer from {path}: {type(exc).__name__}: {exc}") from exc
