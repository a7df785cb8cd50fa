"""Background processes on loopback: free ports, liveness, stopping whole process groups.

Used by the local Airflow, the fixtures that start real servers, and the benches.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path


def die_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn``: the child gets ``sig`` when its parent dies (even by SIGKILL).

    Resolved before the fork, so the child only makes the system call (Linux only).
    """
    if sys.platform != "linux":
        return None
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(1, sig)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_groups(pids: Iterable[int], *, timeout_s: float = 30) -> list[int]:
    """Stop the process groups led by ``pids``; the pids that had to be killed.

    Each was started with ``start_new_session``: SIGTERM every group, wait up to
    ``timeout_s`` for all of them together, then SIGKILL what is left.
    """
    pids = list(pids)
    for pid in pids:
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = [pid for pid in pids if alive(pid)]
    for pid in killed:
        _signal_group(pid, signal.SIGKILL)
    return killed
