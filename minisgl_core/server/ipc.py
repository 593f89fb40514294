"""ZeroMQ plumbing shared by the server's processes: addresses, sockets, and the worker-process set-up."""

from __future__ import annotations

import logging
import os
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any, NoReturn

import msgspec
import zmq

from minisgl_core.parallel import die_with_parent
from minisgl_core.server.messages import WorkerFailed, encode

logger = logging.getLogger("minisgl.server")


@dataclass(frozen=True)
class Addresses:
    """The ``ipc://`` address of each process's PULL socket (all in one private temporary folder)."""

    api: str
    tokenizer: str
    engine: str
    detokenizer: str

    @classmethod
    def in_dir(cls, folder: str) -> Addresses:
        return cls(*(f"ipc://{os.path.join(folder, name)}" for name in ("api", "tokenizer", "engine", "detokenizer")))


def pull_socket(ctx: zmq.Context, address: str) -> zmq.Socket:
    """Bind the PULL socket a process receives everything on."""
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.bind(address)
    return sock


def push_socket(ctx: zmq.Context, address: str) -> zmq.Socket:
    """Connect a PUSH socket to another process (messages queue until the peer has bound)."""
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(address)
    return sock


class Sender:
    """A PUSH socket that sends msgspec messages."""

    def __init__(self, ctx: zmq.Context, address: str) -> None:
        self.sock = push_socket(ctx, address)

    def send(self, msg: msgspec.Struct) -> None:
        self.sock.send(encode(msg), copy=False)


class Receiver:
    """A bound PULL socket decoding one message union; waits in slices so a worker notices an orphaning."""

    def __init__(self, ctx: zmq.Context, address: str, kind: Any) -> None:
        self.sock = pull_socket(ctx, address)
        self.decoder = msgspec.msgpack.Decoder(kind)
        self.poller = zmq.Poller()
        self.poller.register(self.sock, zmq.POLLIN)

    def recv_all(self, block: bool, timeout: float | None = None) -> list[Any]:
        """Every message waiting now; with ``block``, first wait until there is one (exits if orphaned), or
        at most ``timeout`` seconds."""
        if block:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self.poller.poll(500 if timeout is None else max(1, min(500, int(timeout * 1000)))):
                exit_if_orphaned()
                if deadline is not None and time.monotonic() >= deadline:
                    break
        msgs = []
        while True:
            try:
                data = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return msgs
            msgs.append(self.decoder.decode(data.buffer))


_parent_pid: int | None = None


def exit_if_orphaned() -> None:
    """Exit quietly when the process that started this worker is gone."""
    if _parent_pid is not None and os.getppid() != _parent_pid:
        logger.warning("parent process %d is gone; worker %d exits", _parent_pid, os.getpid())
        os._exit(1)


def setup_worker(name: str, log_level: str) -> None:
    """Common start of every worker process: logging, die with the parent, leave Ctrl-C to the parent,
    load plugins."""
    global _parent_pid
    _parent_pid = os.getppid()
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {name}: %(message)s",
    )
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the API server coordinates shutdown
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    die_with_parent()
    exit_if_orphaned()
    from minisgl_core.plugins import load_plugins

    load_plugins()  # plugins may hook into any process; loading is guarded and idempotent


def fail_start_up(to_api: Sender, name: str, exc: BaseException) -> NoReturn:
    """Report a worker's failed start-up to the API server (which exits with the message), then exit."""
    logging.getLogger(f"minisgl.{name}").debug("%s start-up failed:\n%s", name, traceback.format_exc())
    to_api.send(WorkerFailed(name, f"{type(exc).__name__}: {exc}"))
    time.sleep(0.5)  # let the message leave before the process ends
    raise SystemExit(1) from None
