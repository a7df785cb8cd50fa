"""`onering sql`: one read-only statement against Silver (ClickHouse) or Gold (Postgres).

Two layers refuse writes: the gate in ``sqlcheck`` and the store itself. Silver runs with
ClickHouse ``readonly=1`` (no writes, no settings changes, no file/network table function).
Measured on chDB 26.9: ``readonly=2`` and ``allow_ddl=0`` still allow ``file()``, and chDB's
``default`` user can neither create a restricted user nor revoke its FILE/URL grants, so
``readonly=1`` is the store's only lever. Gold runs as ``onering_reader`` (SELECT
on schema ``gold`` only) in a read-only transaction, sent over the extended protocol, so the
server accepts one statement only. A refusal by either layer raises ``ReadOnlyError``;
anything else a store reports raises ``QueryError``. Messages are one line, without
passwords.

Every query runs under a time and a memory limit that the store enforces (ClickHouse
``max_execution_time``/``max_memory_usage``; Postgres ``statement_timeout`` and
``work_mem``). Rows are read in batches into a ``Spool`` (memory up to 16 MB, then a
temporary file) and the store is closed before anything is written: a slow reader
(``| less``) holds neither chDB's process lock nor a Gold snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

import dagster as dg
import psycopg

from onering_assets.errors import ConfigError, QueryError, ReadOnlyError
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.sqlcheck import check_statement
from onering_assets.sqlout import Batch, Spool, TextFormat

Rows = tuple[list[str], list[tuple[Any, ...]]]
# ClickHouse error names that mean "read-only refused this", not "this went wrong".
_CH_REFUSALS = ("(READONLY)", "(ACCESS_DENIED)")
_CH_TIMEOUT = ("(TIMEOUT_EXCEEDED)", "(TOO_SLOW)")
_CH_MEMORY = ("(MEMORY_LIMIT_EXCEEDED)",)
# read_only_sql_transaction, insufficient_privilege, active_sql_transaction (read-only
# cannot be switched off mid-transaction)
_PG_REFUSALS = ("25006", "42501", "25001")
_PG_REFUSED_TEXT = (
    "cannot insert multiple commands into a prepared statement",
    "is not allowed in a non-volatile function",  # a write hidden in query_to_xml()
)
_PG_MEMORY = ("53200", "53400")  # out_of_memory, configuration_limit_exceeded (temp files)
_MAX_MESSAGE = 400
GOLD_BATCH = 8192  # rows per chunk from Postgres (Silver sends ClickHouse's blocks)
COUNT_BUDGET_S = 10.0  # counting a result past the limit; longer and it says "more than"
_COUNTABLE = {"SELECT", "WITH", "VALUES", "TABLE"}


@dataclass(frozen=True)
class Limits:
    """What one query may use; the store stops it past either (0: no limit)."""

    timeout_s: float = 60.0
    max_memory: int = 2 * 1024**3

    def budget(self, seconds: float) -> Limits:
        """The same limits with the time cut to ``seconds``."""
        return Limits(min(self.timeout_s or seconds, seconds), self.max_memory)


def one_line(message: str, secrets: Iterable[str] = ()) -> str:
    """``message`` on one line, shortened, with every secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "***")
    text = " ".join(message.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def size_text(size: int) -> str:
    """``2147483648`` as ``2G`` (binary units, as ONERING_SQL_MAX_MEMORY reads them)."""
    for unit, factor in (("T", 1024**4), ("G", 1024**3), ("M", 1024**2), ("K", 1024)):
        if size >= factor:
            return f"{size / factor:g}{unit}"
    return f"{size} bytes"


def _time_limit_message(store: str, limits: Limits) -> str:
    return (
        f"{store}: the query hit the time limit ({limits.timeout_s:g} s) and was stopped; "
        "raise ONERING_SQL_TIMEOUT to give it longer (0: no limit)."
    )


def _memory_limit_message(store: str, limits: Limits) -> str:
    return (
        f"{store}: the query hit the memory limit ({size_text(limits.max_memory)}) and was "
        "stopped; raise ONERING_SQL_MAX_MEMORY (e.g. 4G; 0: no limit)."
    )


def _countable(statement: str) -> bool:
    """Whether ``statement`` can be the subquery of a ``count()`` (not SHOW, EXPLAIN…)."""
    first = re.match(r"[(\s]*(\w+)", statement)
    return bool(first and first.group(1).upper() in _COUNTABLE)


@contextmanager
def resolved(resource: Any) -> Iterator[Any]:
    """The resource with its ``dg.EnvVar`` settings read (they are names until then)."""
    try:
        manager = resource.process_config_and_initialize_cm()
        ready = manager.__enter__()
    except dg.DagsterInvalidConfigError as err:
        missing = [line.strip() for line in str(err).splitlines() if "environment variable" in line]
        raise ConfigError(one_line(missing[0] if missing else str(err))) from None
    try:
        yield ready
    finally:
        manager.__exit__(None, None, None)


def _silver_settings(limits: Limits) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if limits.timeout_s:
        settings["max_execution_time"] = limits.timeout_s
    if limits.max_memory:
        settings["max_memory_usage"] = limits.max_memory
    settings["readonly"] = 1  # last: the limits above are set with it, in the same query
    return settings


def spool_silver(ch: ClickHouseResource, statement: str, spool: Spool, limits: Limits) -> None:
    """Run an already checked statement on Silver with ``readonly=1`` into ``spool``.

    Unqualified names are Silver's (the session's database is ``silver``). Past the
    spool's limit the query is stopped and, when cheap, the whole result counted.
    """
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        with ch.session() as client:
            if _has_silver(client):
                client.database = "silver"
            if not _countable(statement):  # chDB streams queries only; SHOW etc. are short
                result = client.query(statement, settings=_silver_settings(limits))
                spool.columns = list(result.column_names)
                spool.add([tuple(row) for row in result.result_rows])
                return
            with client.query_row_block_stream(
                statement,
                settings=_silver_settings(limits),
                column_tzs=_column_tzs(client, statement, limits) or None,
            ) as stream:
                spool.columns = list(getattr(stream.source, "column_names", ()))
                for block in stream:
                    if not spool.add(block):
                        break
            if not spool.columns:  # chDB sends no header with no rows
                spool.columns = _silver_columns(client, statement, limits)
            if spool.more and spool.text is None:  # only the table says how many
                spool.total = _count_silver(client, statement, limits)
    except ClickHouseError as err:
        raise _silver_error(err, ch, limits) from None


def _has_silver(client: Any) -> bool:
    rows = client.query("SELECT count() FROM system.databases WHERE name = 'silver'").result_rows
    return bool(rows and rows[0][0])


def _describe_silver(client: Any, statement: str, limits: Limits) -> list[tuple[str, str]]:
    """(name, type) of each result column, without running the statement; [] if unknown."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        described = client.query(f"DESCRIBE (\n{statement}\n)", settings=_silver_settings(limits))
    except ClickHouseError:
        return []
    return [(str(row[0]), str(row[1])) for row in described.result_rows]


def _silver_columns(client: Any, statement: str, limits: Limits) -> list[str]:
    return [name for name, _ in _describe_silver(client, statement, limits)]


_ZONED = re.compile(r"^DateTime(?:64)?\((?:\d+,\s*)?'([^']+)'\)$")


def _column_tzs(client: Any, statement: str, limits: Limits) -> dict[str, str | tzinfo]:
    """Time zones of the result's non-nullable zoned DateTime columns.

    clickhouse-connect's chDB client (1.12) drops the zone of a non-nullable
    ``DateTime('America/New_York')`` and returns the UTC wall time as a naive datetime
    (Nullable ones keep it), so 13:28 EDT printed as 17:28; naming the zone fixes that.
    """
    return {
        name: str(zone.group(1))
        for name, kind in _describe_silver(client, statement, limits)
        if (zone := _ZONED.match(kind))
    }


def _count_silver(client: Any, statement: str, limits: Limits) -> int | None:
    from clickhouse_connect.driver.exceptions import ClickHouseError

    settings = _silver_settings(limits.budget(COUNT_BUDGET_S))
    try:
        result = client.query(f"SELECT count() FROM (\n{statement}\n)", settings=settings)
    except ClickHouseError:
        return None  # too slow to count, or not a query that can be counted
    return int(result.result_rows[0][0])


def _silver_error(err: Exception, ch: ClickHouseResource, limits: Limits) -> Exception:
    message = one_line(str(err), _dsn_secrets(ch.dsn))
    if any(name in message for name in _CH_REFUSALS):
        return ReadOnlyError(f"Silver refused the statement (read-only): {message}")
    if any(name in message for name in _CH_TIMEOUT):
        return QueryError(_time_limit_message("Silver", limits))
    if any(name in message for name in _CH_MEMORY):
        return QueryError(_memory_limit_message("Silver", limits))
    return QueryError(f"Silver: {message}")


def _dsn_secrets(dsn: str) -> tuple[str, ...]:
    from urllib.parse import urlsplit

    password = urlsplit(dsn).password
    return (dsn, password) if password else (dsn,)


def _all_rows(spool_into: Callable[[Spool], None]) -> Rows:
    spool = Spool()
    try:
        spool_into(spool)
        return spool.columns, spool.all_rows()
    finally:
        spool.close()


def run_silver(ch: ClickHouseResource, statement: str, limits: Limits | None = None) -> Rows:
    """Run a statement on Silver with ``readonly=1``; every row (for tests and scripts)."""
    return _all_rows(lambda spool: spool_silver(ch, statement, spool, limits or Limits()))


def _gold_limits(conn: psycopg.Connection, limits: Limits) -> None:
    """Limits and ``search_path`` for this transaction only (``set_config(…, true)``).

    ``work_mem`` bounds each sort and hash before Postgres spills to disk; a plan has a
    handful of them, each up to twice ``work_mem``, so it gets a sixteenth of the limit.
    """
    timeout_ms = round(limits.timeout_s * 1000)
    work_mem_kb = max(64, limits.max_memory // 16 // 1024) if limits.max_memory else None
    conn.execute(
        "SELECT set_config('statement_timeout', %s, true), set_config('search_path', 'gold', true)"
        + (", set_config('work_mem', %s, true)" if work_mem_kb else ""),
        (f"{timeout_ms}ms", *([f"{work_mem_kb}kB"] if work_mem_kb else [])),
    )


def spool_gold(pg: PostgresResource, statement: str, spool: Spool, limits: Limits) -> None:
    """Run a statement on Gold as the reader, read-only, into ``spool``.

    The statement is sent as written, even if the gate was bypassed: Postgres then refuses
    a second statement (extended protocol), a write (read-only transaction, reader role)
    and the superuser's functions (reader role).
    """
    try:
        with pg.connect() as conn:
            if not conn.read_only:
                raise ConfigError("Gold queries need the postgres resource's reader role.")
            _gold_limits(conn, limits)
            _stream_gold(conn, statement, spool)
            conn.rollback()  # a read; and a result stopped at the limit leaves it aborted
            if spool.more and spool.text is None and _countable(statement):
                spool.total = _count_gold(conn, statement, limits)
    except psycopg.Error as err:
        raise _gold_error(err, pg, limits) from None


def _stream_gold(conn: psycopg.Connection, statement: str, spool: Spool) -> None:
    cur = conn.cursor()
    batch: Batch = []
    # Closing the stream early cancels the rest of the query.
    with closing(cur.stream(statement, size=GOLD_BATCH)) as rows:  # type: ignore[arg-type]
        for row in rows:
            if not batch and not spool.columns:
                spool.columns = [d.name for d in cur.description or []]
            batch.append(row)
            if len(batch) == GOLD_BATCH:
                if not spool.add(batch):
                    break
                batch = []
        else:
            spool.add(batch)
    if not spool.columns:
        spool.columns = _gold_columns(conn, statement)


def _gold_columns(conn: psycopg.Connection, statement: str) -> list[str]:
    """The columns of a statement that returned no rows (parsed and described, not run)."""
    pgconn, encoding = conn.pgconn, conn.info.encoding
    if pgconn.prepare(b"", statement.encode(encoding)).status != psycopg.pq.ExecStatus.COMMAND_OK:
        return []
    described = pgconn.describe_prepared(b"")
    return [(described.fname(i) or b"").decode(encoding) for i in range(described.nfields)]


def _count_gold(conn: psycopg.Connection, statement: str, limits: Limits) -> int | None:
    try:
        _gold_limits(conn, limits.budget(COUNT_BUDGET_S))
        row = conn.execute(f"SELECT count(*) FROM (\n{statement}\n) AS counted").fetchone()  # type: ignore[arg-type]
    except psycopg.Error:
        conn.rollback()
        return None  # too slow to count
    return int(row[0]) if row else None


def _gold_error(err: psycopg.Error, pg: PostgresResource, limits: Limits) -> Exception:
    message = one_line(str(err).strip() or type(err).__name__, pg.secrets())
    if err.sqlstate in _PG_REFUSALS or any(t in message for t in _PG_REFUSED_TEXT):
        return ReadOnlyError(f"Gold refused the statement: {message}")
    if err.sqlstate == "57014" and "statement timeout" in message:
        return QueryError(_time_limit_message("Gold", limits))
    if err.sqlstate in _PG_MEMORY:
        return QueryError(f"{_memory_limit_message('Gold', limits)} ({message})")
    return QueryError(f"Gold: {message}")


def run_gold(pg: PostgresResource, statement: str, limits: Limits | None = None) -> Rows:
    """Run a statement on Gold as the reader; every row (for tests and scripts)."""
    return _all_rows(lambda spool: spool_gold(pg, statement, spool, limits or Limits()))


def run_query(
    resources: Mapping[str, Any],
    target: str,
    statement: str,
    *,
    limit: int = 0,
    limits: Limits | None = None,
    text: TextFormat | None = None,
) -> Spool:
    """Check one read-only statement, run it on ``silver`` or ``gold``, return its rows.

    With ``text`` (csv, json) each batch is rendered as it arrives; without, rows are kept
    (the table needs them all to size its columns). The store is closed when this returns;
    the caller writes the spool out and closes it.
    """
    limits = limits or Limits()
    dialect = "clickhouse" if target == "silver" else "postgres"
    checked = check_statement(statement, dialect)
    spool = Spool(limit, text)
    try:
        if target == "silver":
            with resolved(resources["clickhouse"]) as ch:
                spool_silver(ch, checked, spool, limits)
        else:
            with resolved(resources["gold_reader"]) as pg:
                spool_gold(pg, checked, spool, limits)
        spool.finish()
    except BaseException:
        spool.close()
        raise
    return spool
