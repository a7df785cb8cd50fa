"""Dagster's SQLite event log, with its connections kept open (the local profile).

Dagster's ``SqliteEventLogStorage`` builds a new SQLAlchemy engine and opens a new SQLite
connection for every write, and a run writes one event per planned materialization, check,
step output...: 534 for the 13 medallion assets over a year, each a few milliseconds of
setup on top of its commit. This subclass keeps one engine (its pool holds the open
connection) per shard: the index shard, and the few run shards written last (a webserver or
daemon that lives for weeks must not hold a file open per run). Commits are unchanged
(SQLite's defaults: WAL, ``synchronous=FULL``), so what was written survives a power cut as
before. Measured by ``bench/pipeline.py`` (docs/performance.md, "Dagster's event log"):
about 2.5 s less per 1x run, against dagster-postgres on the embedded Postgres, which was
slower than either.

A process forked from one holding connections (the local Airflow's task processes fork from
a preloaded scheduler) opens its own: a SQLite connection must never cross a fork.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

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
        super().__init__(base_dir, inst_data)

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made (and its database initialized) on first use."""
        if self._engines_pid != os.getpid():
            # Forked: the connections belong to the parent; leave them to it, unclosed.
            for engine in self._engines.values():
                engine.dispose(close=False)
            self._engines = OrderedDict()
            self._engines_pid = os.getpid()
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
        with self._db_lock:
            engine = self._engine(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _close_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines = OrderedDict()

    def wipe(self) -> None:
        self._close_engines()  # before the shard files are deleted under them
        super().wipe()

    def dispose(self) -> None:
        self._close_engines()
        super().dispose()
