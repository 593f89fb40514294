"""Running a Markdown tutorial's code blocks in order, as a reader would, in a scratch folder.

Conventions of the tutorials (docs/writing-a-plugin.md):

- a block with ``title="path"`` (```` ```python title="pkg/mod.py" ````) is a file: it is written there;
- ``bash`` blocks run line by line in the current folder (``cd`` changes it). A few commands are run the way
  a test can afford: ``pip install -e .`` is emulated by writing the project's ``.dist-info`` (its entry
  points) into a scratch site folder on ``PYTHONPATH``, so the real entry-point machinery finds the plugin
  without touching the environment; ``minisgl ...`` and ``pytest ...`` run with this interpreter;
  ``minisgl serve ...`` starts the server in the background on a free port and ``curl`` lines are sent to
  it; anything else runs in ``bash``. Every command must succeed;
- a ``python`` block without a title runs as a script; a ``text`` block lists lines that the previous
  command's output must contain;
- other blocks (``toml`` without a title, ...) are only read.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from minisgl_core.parallel import stop_process_group

FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'title="([^"]+)"')
READY = re.compile(r"minisgl ready: (http://\S+)")


@dataclass(frozen=True)
class Block:
    lang: str
    title: str | None
    code: str
    line: int


def code_blocks(markdown: str) -> list[Block]:
    """Every fenced block of ``markdown`` with its language, title and starting line."""
    out = []
    for m in FENCE.finditer(markdown):
        title = TITLE.search(m.group(2))
        out.append(
            Block(m.group(1), title.group(1) if title else None, m.group(3), markdown.count("\n", 0, m.start()) + 1)
        )
    return out


class TutorialRunner:
    """Runs blocks in ``workdir``; ``run_serve`` False skips ``minisgl serve`` and ``curl`` lines."""

    def __init__(self, workdir: Path, run_serve: bool = True, timeout: int = 300) -> None:
        self.root = workdir
        self.cwd = workdir
        self.site = workdir / "_site"
        self.site.mkdir(parents=True, exist_ok=True)
        self.paths = [str(self.site)]
        self.run_serve = run_serve
        self.timeout = timeout
        self.output = ""
        self.server: subprocess.Popen | None = None
        self.server_url: str | None = None
        self.log: list[str] = []

    def env(self) -> dict[str, str]:
        pythonpath = os.pathsep.join([*self.paths, os.environ.get("PYTHONPATH", "")])
        return {**os.environ, "PYTHONPATH": pythonpath, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    def run(self, blocks: list[Block]) -> None:
        try:
            for block in blocks:
                where = f"block at line {block.line}"
                if block.title:
                    path = self.cwd / block.title
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(block.code)
                elif block.lang == "bash":
                    for line in block.code.splitlines():
                        if line.strip() and not line.lstrip().startswith("#"):
                            self.command(line.strip(), where)
                elif block.lang == "python":
                    self.output = self.check([sys.executable, "-c", block.code], f"{where} (python)")
                elif block.lang == "text":
                    missing = [t.strip() for t in block.code.splitlines() if t.strip() and t.strip() not in self.output]
                    assert not missing, f"{where}: output lacks {missing}:\n{self.output}"
        finally:
            self.stop_server()

    def check(self, args: list[str], what: str) -> str:
        self.log.append(what)
        result = subprocess.run(
            args, cwd=self.cwd, env=self.env(), capture_output=True, text=True, timeout=self.timeout
        )
        assert result.returncode == 0, (
            f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
        return result.stdout + result.stderr

    def command(self, line: str, where: str) -> None:
        words = shlex.split(line)
        what = f"{where}: {line}"
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
        elif words[:3] == ["pip", "install", "-e"]:
            self.emulate_editable_install(self.cwd / words[3])
        elif words[:2] == ["minisgl", "serve"]:
            if self.run_serve:
                self.start_server(words[2:], what)
        elif words[0] == "curl":
            if self.run_serve:
                self.output = self.curl(words[1:], what)
        elif words[0] == "minisgl":
            self.output = self.check([sys.executable, "-m", "minisgl_core", *words[1:]], what)
        elif words[0] == "pytest":
            self.output = self.check([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *words[1:]], what)
        else:
            self.output = self.check(["bash", "-c", line], what)

    def emulate_editable_install(self, project: Path) -> None:
        """What ``pip install -e`` leaves behind for the entry-point machinery: a ``.dist-info`` with
        ``METADATA`` and ``entry_points.txt``, and the project folder importable."""
        import tomllib  # Python 3.11+; the docs test skips on older versions

        meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        name, version = meta["name"], meta.get("version", "0")
        info = self.site / f"{re.sub(r'[-_.]+', '_', name)}-{version}.dist-info"
        info.mkdir(parents=True, exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        groups = meta.get("entry-points", {})
        text = "".join(f"[{g}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for g, eps in groups.items())
        (info / "entry_points.txt").write_text(text)
        self.paths.append(str(project.resolve()))
        self.log.append(f"emulated pip install -e {project}")

    def start_server(self, args: list[str], what: str) -> None:
        args = list(args)
        if "--port" in args:
            args[args.index("--port") + 1] = "0"
        log = self.root / "server.log"
        cmd = [sys.executable, "-m", "minisgl_core", "serve", *args]
        self.log.append(what)
        with open(log, "w") as sink:
            self.server = subprocess.Popen(
                cmd, cwd=self.cwd, env=self.env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            match = READY.search(log.read_text(errors="replace"))
            if match:
                self.server_url = match.group(1)
                return
            assert self.server.poll() is None, f"{what}: server exited:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"{what}: server not ready in {self.timeout} s:\n{log.read_text()[-3000:]}")

    def curl(self, args: list[str], what: str) -> str:
        """The ``curl -s URL -H ... -d ...`` lines of the tutorial, sent with urllib to the running server."""
        assert self.server_url, f"{what}: no server running"
        headers, data, url = {}, None, None
        it = iter(args)
        for arg in it:
            if arg == "-H":
                key, _, value = next(it).partition(":")
                headers[key.strip()] = value.strip()
            elif arg == "-d":
                data = next(it).encode()
            elif arg.startswith("http"):
                url = re.sub(r"^http://[^/]+", self.server_url, arg)
        assert url, f"{what}: no URL"
        self.log.append(what)
        request = urllib.request.Request(url, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = response.read().decode()
            assert response.status == 200, f"{what}: HTTP {response.status}: {body}"
        json.loads(body)
        return body

    def stop_server(self) -> None:
        if self.server is None:
            return
        proc, self.server = self.server, None
        stop_process_group(proc, timeout=30)  # the server's own process group (started above)
