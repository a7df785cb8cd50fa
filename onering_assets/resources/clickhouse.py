"""ClickHouse through clickhouse-connect: chDB in-process locally, a server over HTTP in compose."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import dagster as dg
from pydantic import Field, PrivateAttr

from onering_assets.errors import ConfigError
from onering_assets.resources.locks import FileLocks, Locks, PgLocks, store_lock

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


class Statements(Protocol):
    """What runs plain statements (no parameters, no result): a client, or a chDB handle."""

    def command(self, cmd: str) -> Any: ...

    def close(self) -> None: ...


class _ChdbStatements:
    """Plain statements on one more handle of the chDB engine this process holds."""

    def __init__(self, path: Path) -> None:
        import chdb

        self._conn = chdb.connect(str(path))

    def command(self, cmd: str) -> None:
        self._conn.query(cmd)

    def close(self) -> None:
        self._conn.close()


class ClickHouseResource(dg.ConfigurableResource):
    """A clickhouse-connect client for Silver (and for computing Gold).

    ``dsn`` is ``chdb:///abs/dir`` for the embedded engine or ``http://user:pass@host:8123``
    for a server. The client is opened on first use and kept for the run, because opening
    chDB costs about 0.25 s; with chDB the data directory is locked for that time, and
    opening it first finishes any crashed publish and drops orphaned staging.

    Publication locks are files beside the chDB directory, or Postgres advisory locks on a
    server (``lock_dsn``; nothing else serializes runs that share a ClickHouse server).
    """

    dsn: str
    lock_timeout_s: float = 120.0
    lock_dsn: str | None = None
    # Declared SQL is written like standard SQL: an alias does not shadow a column of the
    # same name, and a ``month=…`` folder in a lake path is not a column.
    settings: dict[str, int] = Field(
        default_factory=lambda: {"prefer_column_name_to_alias": 1, "use_hive_partitioning": 0}
    )

    _stack: contextlib.ExitStack | None = PrivateAttr(default=None)
    _client: Client | None = PrivateAttr(default=None)

    @property
    def is_embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @property
    def data_dir(self) -> Path | None:
        return Path(self.dsn.removeprefix("chdb://")) if self.is_embedded else None

    def _open(self) -> Client:
        import clickhouse_connect

        stack = contextlib.ExitStack()
        if self.data_dir is not None:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(
                store_lock(
                    self.data_dir.with_suffix(".lock"),
                    timeout_s=self.lock_timeout_s,
                    what=f"The embedded ClickHouse store {self.data_dir}",
                )
            )
        try:
            client = clickhouse_connect.get_client(dsn=self.dsn, settings=self.settings)
        except BaseException:
            stack.close()
            raise
        stack.callback(client.close)
        self._stack, self._client = stack, client
        if self.is_embedded:
            # Nothing else can hold chDB now: every staging table and pending publish is a
            # crashed run's. On a server each publish recovers its table under its lock.
            from onering_assets.silver.recovery import recover

            try:
                recover(client, self.locks())
            except BaseException:
                self.close()
                raise
        return client

    def another_connection(self) -> Statements:
        """One more connection for plain statements, beside the open client; close it.

        For work in parallel. With chDB, the process must hold the store already
        (:meth:`get_client`): a raw handle on the same engine (0.3 ms to open, where a
        clickhouse-connect client spends ~12 ms on its setup queries); on a server, a
        clickhouse-connect client.
        """
        if self.data_dir is None:
            import clickhouse_connect

            return clickhouse_connect.get_client(dsn=self.dsn, settings=self.settings)
        return _ChdbStatements(self.data_dir)

    def locks(self) -> Locks:
        """Named locks for publication and staging ownership (see resources/locks.py)."""
        if self.lock_dsn:
            return PgLocks(self.lock_dsn, self.lock_timeout_s)
        if self.data_dir is not None:
            return FileLocks(self.data_dir.with_suffix(".locks"), self.lock_timeout_s)
        raise ConfigError(
            "A ClickHouse server is shared by concurrent runs: set the clickhouse resource's "
            "lock_dsn (a Postgres DSN; ONERING_POSTGRES_DSN in compose) to serialize publication."
        )

    def get_client(self) -> Client:
        """The shared client, opened (and the store locked) on first call."""
        return self._client if self._client is not None else self._open()

    def close(self) -> None:
        """Close the client and release the store."""
        if self._stack is not None:
            self._stack.close()
        self._stack, self._client = None, None

    @contextlib.contextmanager
    def session(self) -> Iterator[Client]:
        """Use the store for a block, outside a Dagster run (CLI, scripts)."""
        try:
            yield self.get_client()
        finally:
            self.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
