"""The server side of the online benchmark: launching ``minisgl serve``, reading ``/metrics``."""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minisgl_core.parallel import stop_process_group

READY = re.compile(r"minisgl ready: (http://\S+)")
METRICS = {
    "prefix_cache_hit_tokens": "minisgl_prefix_cache_hit_tokens_total",
    "prefix_cache_queried_tokens": "minisgl_prefix_cache_queried_tokens_total",
    "retractions": "minisgl_num_retractions_total",
    "generation_tokens": "minisgl_generation_tokens_total",
}


# -- the server under test -------------------------------------------------------------------------------


class LaunchedServer:
    """``python -m minisgl_core serve ARGS`` in its own process group, ready once ``/health`` answers 200."""

    def __init__(self, serve_args: list[str], log_path: Path, timeout: float = 300.0) -> None:
        cmd = [sys.executable, "-m", "minisgl_core", "serve", *serve_args]
        if "--port" not in serve_args:
            cmd += ["--port", "0"]
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            self.url = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> str:
        import httpx

        deadline = time.monotonic() + timeout
        url = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if url is None:
                match = READY.search(self.log_path.read_text(errors="replace"))
                url = match.group(1) if match else None
            if url is not None:
                try:
                    if httpx.get(url + "/health", timeout=5).status_code == 200:
                        return url
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready after {timeout} s (log: {self.log_path})")

    def stop(self, timeout: float = 20.0) -> None:
        stop_process_group(self.proc, timeout)  # SIGTERM, then SIGKILL to what is left of the group
        self._log.close()


def resolve_random_small(serve_args: list[str]) -> list[str]:
    """``--model random-small`` -> a folder holding the random 4-layer Qwen3 of ``prefix_cache.py`` (hidden
    256, byte tokenizer), written once per process and removed at exit; served as ``random-small``."""
    if "random-small" not in serve_args or serve_args.index("random-small") < 1:
        return serve_args
    i = serve_args.index("random-small")
    if serve_args[i - 1] != "--model":
        return serve_args
    from prefix_cache import SMALL

    from minisgl_core.testing.tiny_models import save_tiny_model

    global _RANDOM_SMALL
    if _RANDOM_SMALL is None:
        _RANDOM_SMALL = tempfile.mkdtemp(prefix="minisgl-online-")
        atexit.register(shutil.rmtree, _RANDOM_SMALL, True)
        save_tiny_model(_RANDOM_SMALL, "qwen3", seed=0, **SMALL)
    name = [] if "--served-model-name" in serve_args else ["--served-model-name", "random-small"]
    return [*serve_args[:i], _RANDOM_SMALL, *serve_args[i + 1 :], *name]


_RANDOM_SMALL: str | None = None


def model_vocab_size(serve_args: list[str]) -> int | None:
    """The vocabulary size of the ``--model`` a launch would serve, when it is ``demo`` or a local folder."""
    if "--model" not in serve_args or serve_args.index("--model") + 1 >= len(serve_args):
        return None
    model = serve_args[serve_args.index("--model") + 1]
    if model == "demo":
        from minisgl_core.checkpoint import demo_dir

        path = demo_dir() / "config.json"
    else:
        path = Path(model) / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    return config.get("vocab_size") or config.get("text_config", {}).get("vocab_size")


def scrape_metrics(base_url: str, headers: dict[str, str]) -> dict[str, float]:
    import httpx

    try:
        text = httpx.get(base_url + "/metrics", headers=headers, timeout=10).text
    except httpx.HTTPError:
        return {}
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.split("{", 1)[0]  # labels (model_name=...) summed over
            values[name] = values.get(name, 0.0) + float(value)
    return {key: values[name] for key, name in METRICS.items() if name in values}


def served_model(base_url: str, headers: dict[str, str]) -> str:
    import httpx

    return httpx.get(base_url + "/v1/models", headers=headers, timeout=30).json()["data"][0]["id"]
