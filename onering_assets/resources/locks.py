"""Inter-process locks: one owner per embedded store, and named publication locks.

chDB opens a data directory in one process only; a second process fails with an opaque
engine error. Taking ``store_lock`` first turns that into a wait, then a clear error.
``FileLocks`` and ``PgLocks`` give the same named locks (publish one table, keep a run's
staging alive) on one machine and across hosts.

Every acquisition adds how long it waited to this process's ``waited()`` totals, by kind
(``store:clickhouse``, ``publish``, ``stage``…): the steps put the difference into their
materialization's metadata, and the metrics export it.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from onering_assets.errors import StoreBusyError

_WAITED: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))  # seconds, acquisitions
_WAITED_LOCK = threading.Lock()


def waited() -> dict[str, tuple[float, int]]:
    """Seconds this process has waited for locks so far, and acquisitions, by kind."""
    with _WAITED_LOCK:
        return dict(_WAITED)


def waited_since(before: dict[str, tuple[float, int]]) -> dict[str, float]:
    """Seconds waited for each kind of lock acquired since ``before`` (rounded to ms)."""
    waits = {}
    for kind, (seconds, count) in sorted(waited().items()):
        then_seconds, then_count = before.get(kind, (0.0, 0))
        if count > then_count:
            waits[kind] = round(seconds - then_seconds, 3)
    return waits


def _note_wait(kind: str, seconds: float) -> None:
    with _WAITED_LOCK:
        total, count = _WAITED[kind]
        _WAITED[kind] = (total + seconds, count + 1)


def lock_kind(name: str) -> str:
    """A named lock's kind, the part before ``:`` (``publish:silver.flights`` → ``publish``)."""
    return name.split(":", 1)[0]


def _holder(lock_path: Path) -> str:
    try:
        pid = lock_path.read_text().strip()
    except OSError:
        return "another process"
    return f"process {pid}" if pid else "another process"


@contextmanager
def exclusive_flock(
    path: Path, timeout_s: float, busy: Callable[[], Exception], *, poll_s: float = 0.2
) -> Iterator[int]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing); yields its descriptor.

    Raises:
        Exception: ``busy()``, when another process still holds it after ``timeout_s``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                time.sleep(poll_s)
        yield fd
    finally:
        os.close(fd)


@contextmanager
def store_lock(
    lock_path: Path, *, timeout_s: float, what: str, kind: str | None = None
) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``, waiting up to ``timeout_s`` seconds.

    The wait counts as ``kind`` (default ``store:<file name>``) in ``waited()``.

    Raises:
        StoreBusyError: the lock is still held by another process after ``timeout_s``.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)

    def busy() -> StoreBusyError:
        return StoreBusyError(
            f"{what} is in use by {_holder(lock_path)} (a running materialization "
            f"or `onering sql`). Wait for it to finish, or raise "
            f"ONERING_LOCK_TIMEOUT (now {timeout_s:g} s)."
        )

    started = time.monotonic()
    with exclusive_flock(lock_path, timeout_s, busy) as fd:
        _note_wait(kind or f"store:{lock_path.stem.lstrip('.')}", time.monotonic() - started)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield


def _lock_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) + ".lock"


class FileLocks:
    """Named locks as ``flock``ed files in one folder: for a local lake and embedded chDB.

    The kernel releases a dead process's locks, so a held lock means a live holder.
    """

    def __init__(self, folder: Path, timeout_s: float = 120.0) -> None:
        self.folder, self.timeout_s = folder, timeout_s

    @contextmanager
    def hold(self, name: str, *, what: str) -> Iterator[None]:
        """Hold lock ``name`` exclusively, waiting up to the timeout.

        A ``stage:`` lock names one run's staging, which only that run ever holds, so its
        file is deleted on release (one file per run would otherwise pile up); shared locks
        keep their file, since deleting it could let two processes lock different files.
        """
        path = self.folder / _lock_file_name(name)
        try:
            with store_lock(path, timeout_s=self.timeout_s, what=what, kind=lock_kind(name)):
                yield
        finally:
            if name.startswith("stage:"):
                path.unlink(missing_ok=True)

    def is_held(self, name: str) -> bool:
        """Whether a live process (this one included) holds ``name`` now."""
        try:
            fd = os.open(self.folder / _lock_file_name(name), os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def close(self) -> None:
        """Nothing to release: each hold closes its own file."""


class PgLocks:
    """Named locks as Postgres session advisory locks: for a ClickHouse server or S3 lake.

    Postgres is present in both profiles, every process and host reaches it, and it drops a
    session's advisory locks when the session ends (a killed run's socket closes), so a held
    lock means a live holder, as with ``flock``. Names are hashed with ``hashtextextended``.
    """

    def __init__(self, conninfo: str, timeout_s: float = 120.0) -> None:
        self.conninfo, self.timeout_s = conninfo, timeout_s
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.conninfo, autocommit=True)
        return self._conn

    @contextmanager
    def hold(self, name: str, *, what: str) -> Iterator[None]:
        """Hold lock ``name`` on this object's session, waiting up to the timeout."""
        conn = self._connection()
        started = time.monotonic()
        deadline = started + self.timeout_s
        while not _try_lock(conn, name):
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"{what} is locked by another run (Postgres advisory lock {name!r}). Wait "
                    f"for it to finish, or raise ONERING_LOCK_TIMEOUT (now {self.timeout_s:g} s)."
                )
            time.sleep(0.2)
        _note_wait(lock_kind(name), time.monotonic() - started)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))

    def is_held(self, name: str) -> bool:
        """Whether any session holds ``name`` now (probed from a separate session)."""
        with psycopg.connect(self.conninfo, autocommit=True) as probe:
            if not _try_lock(probe, name):
                return True
            probe.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
        return False

    def close(self) -> None:
        """End the session, which releases every lock it still holds."""
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def _try_lock(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (name,)).fetchone()
    return bool(row and row[0])


Locks = FileLocks | PgLocks
