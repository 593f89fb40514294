"""A real ``minisgl serve`` process for the server tests: start on a free port, wait for ready, stop."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from minisgl_core.parallel import stop_process_group

READY = re.compile(r"minisgl ready: (http://\S+)")


class ServerProcess:
    """``minisgl serve --model PATH --device cpu --attention torch --port 0 ...`` in its own process group."""

    def __init__(
        self, model_path: Path, log_path: Path, *extra: str, timeout: float = 180.0, wait: bool = True,
        nofile: int | None = None,
    ) -> None:  # fmt: skip
        self.log_path = log_path
        cmd = [sys.executable, "-m", "minisgl_core", "serve", "--model", str(model_path), "--device", "cpu"]
        cmd += ["--attention", "torch", "--port", "0", "--log-interval", "1", *extra]
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        limit = None if nofile is None else lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=limit
        )
        self.url = self._wait_ready(timeout) if wait else ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _wait_ready(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = READY.search(self.log())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before ready:\n{self.log()}")
            time.sleep(0.1)
        stop_process_group(self.proc, timeout=0)
        raise RuntimeError(f"server not ready after {timeout} s:\n{self.log()}")

    def get(self, path: str, headers: dict | None = None) -> tuple[int, str]:
        return request(self.url + path, headers=headers)

    def post(self, path: str, body: object, headers: dict | None = None) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        status, text = request(self.url + path, data, {"Content-Type": "application/json", **(headers or {})})
        return status, json.loads(text) if text.startswith("{") else {"raw": text}

    def metrics(self, headers: dict | None = None) -> dict[str, float]:
        status, text = self.get("/metrics", headers)
        assert status == 200
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                name = re.sub(r'model_name="[^"]*",?', "", name).replace(",}", "}").replace("{}", "")
                out[name] = float(value)
        return out

    def wait_idle(self, timeout: float = 20.0, headers: dict | None = None) -> dict[str, float]:
        """Poll ``/metrics`` until no request runs or waits and no KV page is held by a request."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.metrics(headers)
            idle = m["minisgl_num_requests_running"] == 0 and m["minisgl_num_requests_waiting"] == 0
            if idle and m["minisgl_kv_pages_used"] == 0:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"server not idle: {m}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then SIGKILL to whatever is left of the server's process group; its exit code."""
        stop_process_group(self.proc, timeout)
        self._log.close()
        return self.proc.returncode


def request(url: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 60.0) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def descendants(pid: int) -> set[int]:
    """Process ids of every living descendant of ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_members(pgid: int) -> set[int]:
    """Living processes of the process group ``pgid`` (a server started by :class:`ServerProcess` leads one)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == pgid:
                out.add(int(entry))
    return out


def serving(tmp_path_factory: Any, model_path: Path, *extra: str) -> Iterator[ServerProcess]:
    """The body of a test module's server fixture: start one (its log in a fresh folder), yield it, stop it."""
    srv = ServerProcess(model_path, tmp_path_factory.mktemp("srv") / "server.log", *extra)
    try:
        yield srv
    finally:
        srv.stop()


def http_client(server: ServerProcess) -> Iterator[httpx.Client]:
    """The body of a test module's ``http`` fixture: a raw client of ``server``."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
