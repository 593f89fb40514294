"""Progress bars show where a person watches and nowhere else: weight loading counts the checkpoint's tensors
shard by shard on a terminal at the default log level; ``--log-level warning`` and a stderr that is not a
terminal (CI, pipes, server logs) silence it, as they silence the hub's and ``generate``'s bars."""

from __future__ import annotations

import functools
import io
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from minisgl_core.checkpoint import iter_safetensors
from minisgl_core.config import progress as progress_module
from minisgl_core.config.progress import progress_enabled

pexpect = pytest.importorskip("pexpect")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch):
    """Call it in the test (pytest's capture sets sys.stderr between setup and call): a fake terminal on stderr
    that sees every update (no refresh interval)."""

    def install() -> _Terminal:
        out = _Terminal()
        monkeypatch.setattr(sys, "stderr", out)
        monkeypatch.setattr(progress_module, "tqdm", functools.partial(tqdm, mininterval=0, miniters=1))
        return out

    return install


@pytest.fixture
def set_level():
    logger = logging.getLogger("minisgl")
    before = logger.level
    yield lambda name: logger.setLevel(name)  # setLevel also clears the loggers' isEnabledFor caches
    logger.setLevel(before)


@pytest.fixture
def sharded(tiny_qwen3, tmp_path: Path) -> Path:
    tiny_qwen3.hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
    return tmp_path


@pytest.mark.parametrize(
    ("tty", "level", "shown"), [(True, "INFO", True), (True, "WARNING", False), (False, "INFO", False)]
)
def test_when_bars_show(monkeypatch: pytest.MonkeyPatch, set_level, tty: bool, level: str, shown: bool) -> None:
    monkeypatch.setattr(sys, "stderr", _Terminal() if tty else io.StringIO())
    set_level(level)
    assert progress_enabled() is shown


def test_weight_loading_bar_counts_tensors_per_shard(sharded: Path, terminal, set_level) -> None:
    set_level("INFO")
    out = terminal()
    names = [name for name, _ in iter_safetensors(sharded)]
    shards = len(list(sharded.glob("*.safetensors")))
    assert shards > 1
    text = out.getvalue()
    assert "loading weights" in text and f"{len(names)}/{len(names)}" in text
    assert f"shard {shards}/{shards}" in text


def test_weight_loading_is_quiet_at_warning(sharded: Path, terminal, set_level) -> None:
    out = terminal()
    set_level("WARNING")
    assert list(iter_safetensors(sharded))
    set_level("INFO")
    assert list(iter_safetensors(sharded, show_progress=False))  # a tensor-parallel rank other than the first
    assert out.getvalue() == ""


def _generate(model: Path, *flags: str) -> list[str]:
    return ["-m", "minisgl_core", "generate", "--model", str(model), "--prompt", "hi", "--max-tokens", "2", *flags]


def _on_terminal(args: list[str]) -> str:
    child = pexpect.spawn(sys.executable, args, encoding="utf-8", timeout=180, dimensions=(40, 200))
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before


@pytest.mark.slow
def test_cli_bar_on_a_terminal_only(sharded: Path, tiny_qwen3) -> None:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_qwen3.path / name, sharded / name)
    on_tty = _on_terminal(_generate(sharded))
    assert "loading weights" in on_tty and "finish_reason" in on_tty
    quiet = _on_terminal(_generate(sharded, "--log-level", "warning"))
    assert "loading weights" not in quiet and "finish_reason" in quiet
    piped = subprocess.run([sys.executable, *_generate(sharded)], capture_output=True, text=True, timeout=180)
    assert piped.returncode == 0, piped.stderr
    assert "loading weights" not in piped.stderr + piped.stdout and "finish_reason" in piped.stdout


def test_hub_and_transformers_bars_follow_the_rule(monkeypatch: pytest.MonkeyPatch, set_level) -> None:
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    from minisgl_core.config.progress import library_progress

    set_level("INFO")
    before = (are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled())
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal: the libraries' own bars are hidden
    with library_progress():
        assert are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
    assert (are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()) == before  # restored
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with library_progress():  # on a terminal they are left as the user set them
        assert (are_progress_bars_disabled(), hf_logging.is_progress_bar_enabled()) == before
