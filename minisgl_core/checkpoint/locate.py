"""Where a model's files are: a local folder, a snapshot of a Hugging Face hub repo, or the built-in demo."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from minisgl_core.checkpoint.tiny import save_tiny_model
from minisgl_core.config.progress import library_progress

CONFIG_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "tokenizer*"]
DEMO_NAME = "demo"
DEMO_VERSION = "1"


def locate_model(model: str, *, need_weights: bool = True, revision: str | None = None) -> Path:
    """The local folder of ``model``: ``demo`` is built on first use, hub ids are downloaded (the config and
    tokenizer files only, unless ``need_weights``)."""
    if model == DEMO_NAME:
        return demo_dir()
    return resolve_model_dir(model, need_weights=need_weights, revision=revision)


def resolve_model_dir(model: str, *, need_weights: bool = True, revision: str | None = None) -> Path:
    """Return a local folder holding ``model``: the path itself, or a snapshot of a hub repo.

    Raises ``ValueError`` with a clear message when the path does not exist and the hub cannot supply it.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ValueError(f"model path {model!r} is not a directory")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise ValueError(f"{model!r} is not a local folder and huggingface_hub is not installed") from exc
    patterns = CONFIG_PATTERNS + (["*.safetensors"] if need_weights else [])
    try:
        with library_progress():  # huggingface_hub's own bars, shown where ours are
            return Path(snapshot_download(model, revision=revision, allow_patterns=patterns))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated, ...
        offline = os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True")
        hint = " (HF_HUB_OFFLINE is set)" if offline else ""
        raise ValueError(
            f"model {model!r} is not a local folder and could not be fetched from the Hugging Face hub{hint}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def demo_dir() -> Path:
    """Folder holding the built-in ``demo`` model - a tiny random Qwen3 with a byte-level tokenizer, which runs
    anywhere without downloads and says nothing sensible - created (atomically) on first use."""
    root = Path(os.environ.get("MINISGL_CACHE_DIR", Path.home() / ".cache" / "minisgl"))
    target = root / f"demo-v{DEMO_VERSION}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="demo-", dir=root))
    try:
        with library_progress(show=False):  # writing a few kB needs no bar
            save_tiny_model(tmp, "qwen3", seed=1234, max_position_embeddings=4096)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
