"""Starting, supervising and stopping the server's processes.

``minisgl serve`` runs :func:`run_server` in the main process: it spawns the tokenizer, engine and
detokenizer workers (multiprocessing ``spawn``), waits until each reported ready, then serves HTTP with
uvicorn on the same asyncio loop and logs ``minisgl ready: URL``. SIGINT/SIGTERM fail in-flight requests
with 503, stop uvicorn and terminate the workers (killed if they linger). A worker that dies turns
``/health`` to 503, fails in-flight and new requests with 503, and the server exits with code 1.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from minisgl_core.checkpoint import generation_defaults, locate_model
from minisgl_core.checkpoint.generation_config import describe
from minisgl_core.config import EngineConfig, ServerArgs
from minisgl_core.plugins import resolve_grammar
from minisgl_core.server.app import build_app
from minisgl_core.server.asgi import resolve_api_key
from minisgl_core.server.chat_stream import ChatSettings
from minisgl_core.server.connections import connection_cap, guarded_protocol
from minisgl_core.server.detokenizer_worker import run_detokenizer_worker
from minisgl_core.server.engine_client import EngineClient, StartupError
from minisgl_core.server.engine_worker import run_engine_worker
from minisgl_core.server.gc_pauses import PauseWatch, prepare_server_process
from minisgl_core.server.ipc import Addresses
from minisgl_core.server.metrics import Metrics
from minisgl_core.server.threads import use_one_torch_thread
from minisgl_core.server.tokenizer_worker import run_tokenizer_worker
from minisgl_core.text import load_chat_template

logger = logging.getLogger("minisgl.server")

ReadyCallback = Callable[[str, uvicorn.Server], None]


def tokenizer_path(config: EngineConfig) -> str:
    """Where the tokenizer and detokenizer workers load the tokenizer from."""
    if config.tokenizer:
        return config.tokenizer
    return str(locate_model(config.model, need_weights=False, revision=config.revision))


def chat_settings(config: EngineConfig, args: ServerArgs) -> ChatSettings:
    """The sampling defaults (``--generation-config``, logged) and parsers the chat endpoints use."""
    model_dir = locate_model(config.model, need_weights=False, revision=config.revision)
    defaults = generation_defaults(config.generation_config, model_dir)
    logger.info("sampling defaults (--generation-config %s): %s", config.generation_config, describe(defaults))
    constrained = resolve_grammar(config.grammar_backend) is not None  # tool_choice required/named enforced
    return ChatSettings.create(defaults, args.reasoning_parser, args.tool_call_parser, constrained)


class Workers:
    """The three worker processes and the private folder of their sockets."""

    def __init__(self, config: EngineConfig, args: ServerArgs) -> None:
        tok = tokenizer_path(config)
        template = load_chat_template(args.chat_template) if args.chat_template else None
        self.chat = chat_settings(config, args)  # before spawning: a bad setting fails at once
        self.tmpdir = tempfile.mkdtemp(prefix="minisgl-")
        self.addrs = Addresses.in_dir(self.tmpdir)
        mp = multiprocessing.get_context("spawn")
        level = args.log_level
        beat = min(1.0, args.engine_timeout / 4) if args.engine_timeout > 0 else 1.0  # heartbeat interval
        gc_warn = args.gc_warning_threshold_secs
        self.procs = {
            "engine": mp.Process(
                target=run_engine_worker,
                name="minisgl-engine",
                args=(config, self.addrs, level, args.log_interval, beat, gc_warn),
            ),
            "tokenizer": mp.Process(
                target=run_tokenizer_worker, args=(tok, self.addrs, level, gc_warn, template), name="minisgl-tok"
            ),
            "detokenizer": mp.Process(
                target=run_detokenizer_worker,
                args=(tok, self.addrs, level, gc_warn, args.stop_regex_window),
                name="minisgl-detok",
            ),
        }
        try:
            for proc in self.procs.values():
                proc.start()
        except BaseException:  # Ctrl-C while spawning: leave nothing behind
            self.stop()
            raise

    def dead(self) -> str | None:
        """The name of a worker that exited, if any."""
        for name, proc in self.procs.items():
            if proc.exitcode is not None:
                return name
        return None

    def stop(self, timeout: float = 3.0) -> None:
        """Terminate every worker; kill those still alive after ``timeout`` seconds."""
        started = [p for p in self.procs.values() if p.pid is not None]
        for proc in started:
            if proc.exitcode is None:
                proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in started:
            proc.join(max(deadline - time.monotonic(), 0.0))
            if proc.exitcode is None:
                logger.warning("%s did not stop in time; killing it", proc.name)
                proc.kill()
                proc.join(1.0)
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class _Server(uvicorn.Server):
    """uvicorn that also runs ``on_exit`` when a signal asks it to stop."""

    on_exit: Callable[[], None] = staticmethod(lambda: None)  # type: ignore[assignment]

    def handle_exit(self, sig: int, frame: object) -> None:  # type: ignore[override]
        super().handle_exit(sig, frame)  # type: ignore[arg-type]
        self.on_exit()


def _listen_socket(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def serve_app(config: EngineConfig, args: ServerArgs, workers: Workers, on_ready: ReadyCallback | None) -> int:
    """Handshake with the workers, then serve HTTP until asked to stop; returns the exit code."""
    metrics = Metrics(args.served_model_name or config.model)
    client = EngineClient(workers.addrs, metrics)
    try:
        await client.wait_ready(workers.dead)
        client.start()
        app = build_app(client, metrics, args, args.served_model_name or config.model, workers.chat)
        sock = _listen_socket(args.host, args.port)
        uv_config = uvicorn.Config(
            app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=3,
            log_level=args.log_level.lower(), timeout_keep_alive=args.keep_alive_timeout,  # type: ignore[arg-type]
            http=guarded_protocol(args.idle_timeout, connection_cap(args.max_connections)),
        )  # fmt: skip
        server = _Server(uv_config)
        loop = asyncio.get_running_loop()
        server.on_exit = lambda: loop.call_soon_threadsafe(client.fail_all, 503, "the server is shutting down")
        exit_code = 0

        gc_watch: PauseWatch | None = None  # the API process may be a test's: the watch leaves with the server

        async def supervise() -> None:
            nonlocal exit_code, gc_watch
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.05)
            host, port = sock.getsockname()[:2]
            url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            gc_watch = prepare_server_process("api", args.gc_warning_threshold_secs)
            logger.info("minisgl ready: %s", url)
            if on_ready is not None:
                on_ready(url, server)
            while not server.should_exit:
                client.check_engine(args.engine_timeout)
                dead = workers.dead()
                if dead is not None:
                    code = workers.procs[dead].exitcode
                    logger.error("the %s worker died (exit code %s); shutting down", dead, code)
                    client.fail_all(503, f"the {dead} worker died; the server is shutting down")
                    exit_code = 1
                    await asyncio.sleep(args.death_grace)
                    server.should_exit = True
                    return
                await asyncio.sleep(0.2)

        watcher = asyncio.ensure_future(supervise())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            if gc_watch is not None:
                gc_watch.remove()
        return exit_code
    finally:
        client.close()


def run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro`` on uvloop when it is installed (faster sockets), else on asyncio's default loop."""
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(coro)
        return uvloop.run(coro)
    finally:
        coro.close()  # no-op once it ran; avoids a warning when interrupted before it started


def run_server(config: EngineConfig, args: ServerArgs) -> int:
    """``minisgl serve``: blocks in the main thread until Ctrl-C / SIGTERM or a worker's death."""
    use_one_torch_thread()  # the API server does no tensor math
    serving = threading.Event()
    main: dict[str, Any] = {}

    def on_signal(sig: int, frame: object) -> None:
        # while serving uvicorn owns the signals; this only sees the one it re-raises when done
        if serving.is_set() or main.get("stopping"):
            return
        if "task" not in main:  # the loop is not running yet
            raise KeyboardInterrupt
        main["interrupted"] = True  # during start-up: stop at once (works on asyncio and uvloop alike)
        main["loop"].call_soon_threadsafe(main["task"].cancel)

    async def serve(workers: Workers) -> int:
        main["loop"], main["task"] = asyncio.get_running_loop(), asyncio.current_task()
        return await serve_app(config, args, workers, lambda url, srv: serving.set())

    try:
        resolve_api_key(args)  # a missing key file stops us before any worker starts
    except (OSError, ValueError) as exc:
        logger.error("cannot read the API key: %s", exc)
        return 1
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    workers: Workers | None = None
    try:
        workers = Workers(config, args)
        return run_async(serve(workers))
    except StartupError as exc:
        logger.error("%s", exc)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not main.get("interrupted") and "task" in main:
            raise
        logger.info("interrupted during start-up")
        return 130
    finally:
        main["stopping"] = True  # a second Ctrl-C must not interrupt the clean-up
        if workers is not None:
            workers.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        logger.info("minisgl server stopped")


class ServerThread:
    """The whole server in a background thread of this process (workers spawned from the caller's thread),
    for the interactive shell: :meth:`start` returns the URL once ready; :meth:`stop` shuts down."""

    def __init__(self, config: EngineConfig, args: ServerArgs) -> None:
        self.config = config
        self.args = args
        self.url: str | None = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers = Workers(config, args)
        self._thread = threading.Thread(target=self._run, name="minisgl-server", daemon=True)

    def _on_ready(self, url: str, server: uvicorn.Server) -> None:
        self.url, self._server, self._loop = url, server, asyncio.get_running_loop()
        self._ready.set()

    def _run(self) -> None:
        try:
            run_async(serve_app(self.config, self.args, self._workers, self._on_ready))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc
        finally:
            self._ready.set()

    def start(self) -> str:
        self._thread.start()
        self._ready.wait()
        if self.url is None:
            self.stop()
            raise self.error or StartupError("the server stopped during start-up")
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._loop is not None and self._thread.is_alive():
            server = self._server
            self._loop.call_soon_threadsafe(setattr, server, "should_exit", True)
            self._thread.join(5.0)
        self._workers.stop()
