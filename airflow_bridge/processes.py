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


# Run by the main interpreter in the child: ask for ``sig`` on the parent's death, check the
# parent is still the one that started it, then become the real command (exec keeps it).
_DEATH_WRAPPER = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[1]), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[2]):\n"
    "    os._exit(1)\n"
    "os.execvp(sys.argv[3], sys.argv[3:])\n"
)


def dying_with_parent(argv: list[str], sig: signal.Signals) -> list[str]:
    """``argv`` started so that it gets ``sig`` when this process dies (Linux; else as is).

    The same as ``preexec_fn=die_with_parent(sig)`` without a ``preexec_fn``, which is unsafe
    in a process with threads (a Dagster code server evaluating sensors: a child crashed with
    SIGSEGV between fork and exec): a small Python sets the signal, then execs ``argv``.
    """
    if sys.platform != "linux":
        return argv
    return [sys.executable, "-c", _DEATH_WRAPPER, str(int(sig)), str(os.getpid()), *argv]


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
