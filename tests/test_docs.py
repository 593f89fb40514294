"""Documentation stays true: every hook spec has a complete section in docs/plugins.md whose example
registers, and every code block of the tutorial runs."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from doc_runner import TutorialRunner, code_blocks

from minisgl_core.contracts import hookspecs
from minisgl_core.plugins import loaded_plugins, register_plugin, unregister_plugin

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_names() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("minisgl_")]


def hook_sections() -> dict[str, str]:
    text = (DOCS / "plugins.md").read_text()
    parts = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part.split("\n## ", 1)[0] for part in parts}


def test_every_hook_spec_is_documented() -> None:
    missing = [name for name in hook_names() if name not in hook_sections()]
    assert not missing, f"docs/plugins.md lacks sections for: {missing}"


def test_every_hook_spec_has_a_contract_docstring() -> None:
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc and ("Return" in doc or "return" in doc), (
            f"{name} docstring must say who calls it and what it returns"
        )


@pytest.mark.parametrize("hook", hook_names())
def test_hook_section_states_contract_and_its_example_registers(hook: str) -> None:
    section = hook_sections()[hook]
    for field in ("**Called**", "**Arguments**", "**Returns**"):
        assert field in section, f"the section of {hook} lacks {field}"
    examples = [b.code for b in code_blocks(section) if b.lang == "python" and f"def {hook}(" in b.code]
    assert examples, f"the section of {hook} has no python example implementing it"
    module = types.ModuleType(f"doc_example_{hook}")
    exec(compile(examples[0], f"docs/plugins.md ({hook})", "exec"), module.__dict__)  # noqa: S102
    name = register_plugin(module, name=module.__name__)
    try:
        info = next(p for p in loaded_plugins() if p.name == name)
        if "register" in hook:
            assert info.registered, f"the example of {hook} registers nothing"
        else:
            assert hasattr(module, hook)
    finally:
        unregister_plugin(name)


def test_tutorial_code_blocks_run(tmp_path: Path) -> None:
    """docs/writing-a-plugin.md from an empty folder: write the package, install it (emulated), list it,
    run its conformance test, use it from Python, the CLI and - when the subcommand exists - the server."""
    pytest.importorskip("tomllib")
    blocks = code_blocks((DOCS / "writing-a-plugin.md").read_text())
    serve = subprocess.run([sys.executable, "-m", "minisgl_core", "serve", "--help"], capture_output=True, text=True)
    runner = TutorialRunner(tmp_path, run_serve=serve.returncode == 0)
    runner.run(blocks)
    done = "\n".join(runner.log)
    for step in ("pip install -e", "minisgl plugins", "pytest", "(python)", "minisgl generate"):
        assert step in done, f"the tutorial no longer exercises {step!r}"
    if serve.returncode == 0:
        assert "minisgl serve" in done and "curl" in done
