"""Process helpers shared by every spawned minisgl process."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux; elsewhere a no-op), so no
    worker outlives the process that started it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stop_process_group(proc: subprocess.Popen, timeout: float) -> int | None:
    """Stop a process started with ``start_new_session=True`` (e.g. ``minisgl serve``): SIGTERM, up to
    ``timeout`` s for it to exit, then SIGKILL to whatever is left of its process group (its workers).
    Returns its exit code (None if it could not be reaped)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        return None
