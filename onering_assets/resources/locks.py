"""An inter-process lock so one embedded store has one owner at a time.

chDB opens a data directory in one process only; a second process fails with an opaque
engine error. Taking this lock first turns that into a wait, then a clear error.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from onering_assets.errors import StoreBusyError


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid else "another process"


@contextmanager
def store_lock(lock_path: Path, *, timeout_s: float, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``, waiting up to ``timeout_s`` seconds.

    Raises:
        StoreBusyError: the lock is still held by another process after ``timeout_s``.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"{what} is in use by {_holder(lock_path)} (a running materialization "
                        f"or `onering sql`). Wait for it to finish, or raise "
                        f"ONERING_LOCK_TIMEOUT (now {timeout_s:g} s)."
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
