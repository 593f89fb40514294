"""Documentation stays true: every hook spec has its section in docs/plugins.md."""

from __future__ import annotations

import inspect
from pathlib import Path

from minisgl_core import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("minisgl_")]


def test_every_hook_spec_is_documented() -> None:
    text = (DOCS / "plugins.md").read_text()
    missing = [name for name in hook_names() if f"### {name}" not in text]
    assert not missing, f"docs/plugins.md lacks sections for: {missing}"


def test_every_hook_spec_has_a_contract_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc and ("Return" in doc or "return" in doc), (
            f"{name} docstring must say who calls it and what it returns"
        )
