"""Dagster's SQLite event log, with its connections kept open (the local profile).

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine and opens a new SQLite
connection for every write, and a run writes one event per planned materialization, check,
step output...: 534 for the 13 medallion assets over a year, each a few milliseconds of
setup on top of its commit. This subclass keeps one engine (its pool holds the open
connection) per shard: the index shard, and the few run shards written last (a webserver or
daemon that lives for weeks must not hold a file open per run). Commits are unchanged
(WAL, as Dagster sets it, with SQLite's ``synchronous=FULL``), so what was written survives a
power cut as before. Measured by ``bench/event_storage.py`` (docs/performance.md, "Dagster's
event log"): 7.2 s instead of 10.5 s per 1x medallion run, against dagster-postgres on the
embedded Postgres, slower than either.

What else differs: with connections kept open, commits stay in the run's ``<run>.db-wal``
until SQLite checkpoints it, so the ``<run>.db`` file Dagster's live-log watcher waits on
may not change during a run. This class's watcher polls the run's events instead (what
dagster-postgres does: every 0.25 s while events come, backing off to 16 s when none do),
so the Dagster UI streams a run's logs; a stock Dagster watching the same folder (a
webserver without this class) sees them only when it reloads.

A process forked from one holding connections (the local Airflow's task processes fork from
a preloaded scheduler) opens its own: a SQLite connection must never cross a fork.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from dagster._core.event_api import EventLogCursor
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.polling_event_watcher import SqlPollingEventWatcher
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection, Engine

# Run shards whose engines stay open besides the index: a run writes only its own shard, so
# a few cover the runs of one process at a time (a step's retries, a checks-only run).
KEPT_RUN_SHARDS = 4


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` that reuses an engine (and its open connection) per shard."""

    def __init__(self, base_dir: str, inst_data: Any = None) -> None:
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        self._poller: SqlPollingEventWatcher | None = None
        self._batch = threading.local()  # .shards: those written in this thread's batch
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _own_engines(self) -> None:
        """After a fork, forget the parent's engines: their connections are not ours."""
        if self._engines_pid != os.getpid():
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made (and its database initialized) on first use."""
        self._own_engines()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        engine = create_engine(
            self.conn_string_for_shard(shard),
            pool_size=1,
            max_overflow=4,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in runs[:-KEPT_RUN_SHARDS]:
            self._engines.pop(old).dispose()
        return engine

    @contextlib.contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:  # type: ignore[override]
        batch: set[str] | None = getattr(self._batch, "shards", None)
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn:
                # Inside a batch a commit is not fsynced on its own (the batch is, at its
                # end); anywhere else it is, as Dagster's SQLite storage does.
                sync = "NORMAL" if batch is not None else "FULL"
                conn.connection.driver_connection.execute(f"PRAGMA synchronous = {sync}")  # type: ignore[union-attr]
                if batch is not None:
                    batch.add(shard)
                with conn.begin():
                    yield conn

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store the events one by one as Dagster does, then fsync each shard written once.

        Dagster sends a batch when ``DAGSTER_EVENT_BATCH_SIZE`` is set (OneRing sets it, see
        ``onering_assets/__init__.py``): a run's planned materializations and checks, and a
        step's materializations of several partitions. In WAL mode with ``synchronous=NORMAL``
        a commit is atomic and the database never corrupt, but not yet on disk; the fsync of
        each ``-wal`` file written before returning makes the whole batch durable, as each
        event was before: one fsync per shard instead of one or more per event. If an event
        fails after others were stored, the rest are stored one at a time (never raising to
        Dagster, whose fallback would store the stored ones twice) unless one fails again.
        """
        stored = 0
        self._batch.shards = set()
        try:
            for event in events:
                self.store_event(event)
                stored += 1
        except Exception:
            if not stored:
                raise  # nothing stored: Dagster's fallback stores each event once
        finally:
            self._sync_batch()
        # Dagster's fallback after an error stores *every* event of the batch again, so once
        # some are stored the rest are stored here, one by one, each fsynced as usual.
        for event in events[stored:]:
            self.store_event(event)

    def _sync_batch(self) -> None:
        shards, self._batch.shards = self._batch.shards, None
        for shard in sorted(shards):
            with contextlib.suppress(FileNotFoundError):
                fd = os.open(f"{self.path_for_shard(shard)}-wal", os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def _close_engines(self) -> None:
        """Close this process's engines (``_db_lock`` held by the caller)."""
        self._own_engines()
        for engine in self._engines.values():
            engine.dispose()
        self._engines = OrderedDict()

    def wipe(self) -> None:
        # The run files are deleted while no writer of this process can hold them open.
        with self._db_lock:
            self._close_engines()
            for pattern in ("*.db", "*.db-wal", "*.db-shm"):
                for path in Path(self._base_dir).glob(pattern):
                    if not path.name.startswith(f"{INDEX_SHARD_NAME}.db"):
                        path.unlink(missing_ok=True)
            self._initialized_dbs = set()
        self._wipe_index()

    def dispose(self) -> None:
        if self._poller is not None:
            self._poller.close()
        with self._db_lock:
            self._close_engines()
        super().dispose()

    def watch(self, run_id: str, cursor: str | None, callback: Any) -> None:
        """Poll the run's events (Dagster's ``SqlPollingEventWatcher``, as dagster-postgres).

        Dagster's SQLite watcher waits for ``<run>.db`` to change, which with connections
        kept open it may not (commits stay in ``-wal``); and a ``-wal`` write is seen before
        the commit is visible to readers, so watching that file loses a run's last events.
        """
        if cursor and EventLogCursor.parse(cursor).is_offset_cursor():
            super().watch(run_id, cursor, callback)  # the poller takes storage-id cursors only
            return
        with self._db_lock:
            if self._poller is None:
                self._poller = SqlPollingEventWatcher(self)
        self._poller.watch_run(run_id, cursor, callback)

    def end_watch(self, run_id: str, handler: Any) -> None:
        if self._poller is not None:
            self._poller.unwatch_run(run_id, handler)
        super().end_watch(run_id, handler)
