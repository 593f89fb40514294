"""``minisgl new-plugin``: names, the command line, generated packages passing their own conformance tests,
and one real ``pip install -e`` proving the generated entry point is found."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from minisgl_core.scaffold import KINDS, PluginNames, new_plugin


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300):
    return subprocess.run(
        list(args), capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout
    )


def test_names_derived_from_the_registered_name() -> None:
    names = PluginNames.derive("my-policy", "cache")
    assert (names.dist, names.module, names.class_name) == ("minisgl-my-policy", "minisgl_my_policy", "MyPolicyCache")
    assert names.select == "--cache my-policy"
    assert PluginNames.derive("minisgl-fast-attn", "attention").dist == "minisgl-fast-attn"
    assert PluginNames.derive("tiny-gpt", "model").class_name == "TinyGptForCausalLM"
    assert PluginNames.derive("my-scheduler", "scheduler").class_name == "MyScheduler"
    for bad in ("My_Policy", "-x", "x--y", "1abc", ""):
        with pytest.raises(ValueError, match="lowercase"):
            PluginNames.derive(bad, "cache")
    with pytest.raises(ValueError, match="kind must be one of"):
        PluginNames.derive("x", "tokenizer")


def test_every_template_placeholder_is_filled(tmp_path: Path) -> None:
    for kind in KINDS:
        files = new_plugin(f"probe-{kind}", kind, tmp_path / kind)
        rel = sorted(str(f.relative_to(tmp_path / kind)) for f in files)
        module = f"minisgl_probe_{kind.replace('-', '_')}"
        assert f"{module}/__init__.py" in rel and f"tests/test_{module}.py" in rel and "pyproject.toml" in rel
        for f in files:
            assert "{{" not in f.read_text(), f"unfilled placeholder in {f}"
        assert f'probe-{kind} = "{module}"' in (tmp_path / kind / "pyproject.toml").read_text()


def test_command_line_writes_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "pkg"
    cmd = [sys.executable, "-m", "minisgl_core", "new-plugin", "my-policy", "--kind", "cache", "--dir", str(target)]
    first = run(*cmd)
    assert first.returncode == 0, first.stderr
    assert "minisgl_my_policy/policy.py" in first.stdout and "pip install -e ." in first.stdout
    assert (target / "minisgl_my_policy" / "policy.py").is_file()
    again = run(*cmd)
    assert again.returncode == 2 and "not empty" in again.stderr
    assert run(*cmd, "--force").returncode == 0


def test_generated_packages_pass_their_own_tests(tmp_path: Path) -> None:
    """Every kind, as generated and not installed: its conformance suite passes (one pytest process)."""
    roots = [tmp_path / f"minisgl-gen-{kind}" for kind in KINDS]
    for kind, root in zip(KINDS, roots):
        new_plugin(f"gen-{kind}", kind, root)
    env = {
        "PYTHONPATH": os.pathsep.join([*map(str, roots), os.environ.get("PYTHONPATH", "")]),
        "MINISGL_PLUGIN_MODULES": ",".join(f"minisgl_gen_{kind.replace('-', '_')}" for kind in KINDS),
    }
    args = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *(str(r / "tests") for r in roots)]
    result = run(*args, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 58, result.stdout[-2000:]  # every kind's suite ran


def test_pip_installed_plugin_is_found_through_its_entry_point(tmp_path: Path) -> None:
    """The one real install: `pip install -e` a generated model plugin, list it, select it by name."""
    root = tmp_path / "minisgl-probe-model"
    new_plugin("probe-model", "model", root)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    run(*pip, "uninstall", "-y", "minisgl-probe-model")  # a leftover of an interrupted run
    installed = run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(root), timeout=600)
    assert installed.returncode == 0, installed.stderr
    try:
        listing = run(sys.executable, "-m", "minisgl_core", "plugins")
        assert "probe-model  (minisgl-probe-model 0.1.0)" in listing.stdout, listing.stdout
        assert "models: ProbeModelForCausalLM" in listing.stdout
        code = (
            "from transformers import LlamaConfig\n"
            "from minisgl_core import LLM, SamplingParams\n"
            "from minisgl_core.testing import save_random_model\n"
            "cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,\n"
            "                  vocab_size=259, architectures=['ProbeModelForCausalLM'])\n"
            f"save_random_model({str(tmp_path / 'ckpt')!r}, cfg)\n"
            f"llm = LLM({str(tmp_path / 'ckpt')!r}, device='cpu', attention='torch')\n"
            "out = llm.generate([1, 2, 3], SamplingParams(max_tokens=3, ignore_eos=True), use_tqdm=False)[0]\n"
            "print(type(llm.runtime.engine.model).__module__, len(out.token_ids))\n"
        )
        gen = run(sys.executable, "-c", code)
        assert gen.returncode == 0, gen.stderr[-3000:]
        assert "minisgl_probe_model.model 3" in gen.stdout
    finally:
        removed = run(*pip, "uninstall", "-y", "minisgl-probe-model")
        assert removed.returncode == 0, removed.stderr


def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    """The first shell block of each generated README runs as written (`pip install -e .` emulated)."""
    for kind in KINDS:
        root = tmp_path / f"minisgl-try-{kind}"
        new_plugin(f"try-{kind}", kind, root)
        block = (root / "README.md").read_text().split("```bash\n", 1)[1].split("```", 1)[0]
        commands = [line.split("  #", 1)[0].strip() for line in block.splitlines()]
        env = {"PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        env["MINISGL_PLUGIN_MODULES"] = (
            f"minisgl_try_{kind.replace('-', '_')}"  # what the entry point does once installed
        )
        ran = 0
        for command in commands:
            if not command or command.startswith("pip install"):
                continue
            result = subprocess.run(
                command, shell=True, cwd=root, capture_output=True, text=True, env={**os.environ, **env}, timeout=300
            )
            assert result.returncode == 0, f"{kind}: {command}\n{result.stderr[-2000:]}"
            ran += 1
        expect = {"reasoning-parser": "('plan', 'answer')", "tool-parser": "'name': 'get_weather'"}.get(
            kind, "tokens: 8"
        )
        assert ran >= 2 and expect in result.stdout, f"{kind}: {result.stdout}"
