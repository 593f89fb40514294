"""The built-in ``demo`` model: a tiny random Qwen3 with a byte-level tokenizer, created on first use.

It lets ``minisgl generate --model demo`` (and ``LLM("demo")``) run anywhere without downloads. Its output
is random text: it exists to exercise the engine, not to say anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

DEMO_NAME = "demo"
DEMO_VERSION = "1"


def demo_dir() -> Path:
    """Folder holding the demo model, created (atomically) if missing."""
    root = Path(os.environ.get("MINISGL_CACHE_DIR", Path.home() / ".cache" / "minisgl"))
    target = root / f"demo-v{DEMO_VERSION}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="demo-", dir=root))
    try:
        from minisgl_core.testing.tiny_models import save_tiny_model

        save_tiny_model(tmp, "qwen3", seed=1234, max_position_embeddings=4096)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
