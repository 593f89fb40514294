"""A model's sampling defaults from its ``generation_config.json`` (``--generation-config auto|FOLDER|none``).

The fields read are those vLLM and SGLang read: ``temperature``, ``top_p``, ``top_k``, ``min_p``,
``repetition_penalty`` and ``max_new_tokens`` (as ``max_tokens``). They become the defaults of every request
(requests override them field by field) and of the offline ``LLM`` when it is given no ``SamplingParams``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger("minisgl.checkpoint")

FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repetition_penalty",
    "max_new_tokens": "max_tokens",
}
"""``generation_config.json`` key -> ``SamplingParams`` field."""


def generation_defaults(setting: str, model_dir: str | Path | None) -> dict[str, Any]:
    """The ``SamplingParams`` defaults ``--generation-config`` selects: from ``model_dir`` (``auto``), from
    the folder ``setting`` names, or none (``none``). A missing file means no defaults; a file that is not a
    JSON object is a ``ValueError``."""
    if setting == "none":
        return {}
    folder = Path(model_dir) if setting == "auto" and model_dir is not None else Path(setting)
    if setting != "auto" and not folder.is_dir():
        raise ValueError(f"--generation-config {setting!r}: expected auto, none or a folder")
    path = folder / "generation_config.json"
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path} is not a JSON object")
    defaults = {field: raw[key] for key, field in FIELDS.items() if raw.get(key) is not None}
    if defaults.get("top_k") == 0:
        defaults["top_k"] = -1  # transformers' "no top-k"
    return defaults


def describe(defaults: dict[str, Any]) -> str:
    """One line for the start-up log."""
    if not defaults:
        return "none (the model has no generation_config.json sampling fields)"
    return ", ".join(f"{k}={v}" for k, v in sorted(defaults.items()))
