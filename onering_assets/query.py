"""`onering sql`: one read-only statement against Silver (ClickHouse) or Gold (Postgres).

Two layers refuse writes: the gate in ``sqlcheck`` and the store itself. Silver runs with
ClickHouse ``readonly=1`` (no writes, no settings changes, no file/network table function).
Measured on chDB 26.9: ``readonly=2`` and ``allow_ddl=0`` still allow ``file()``, and chDB's
``default`` user can neither create a restricted user nor revoke its FILE/URL grants, so
``readonly=1`` is the store's only lever. Gold runs as ``onering_reader`` (SELECT
on schema ``gold`` only) in a read-only transaction, sent as a prepared statement, so the
server accepts one statement only. A refusal by either layer raises ``ReadOnlyError``;
anything else a store reports raises ``QueryError``. Messages are one line, without
passwords.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import psycopg

from onering_assets.errors import ConfigError, QueryError, ReadOnlyError
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.sqlcheck import check_statement

Rows = tuple[list[str], list[tuple[Any, ...]]]
# ClickHouse error names that mean "read-only refused this", not "this went wrong".
_CH_REFUSALS = ("(READONLY)", "(ACCESS_DENIED)")
# read_only_sql_transaction, insufficient_privilege, active_sql_transaction (read-only
# cannot be switched off mid-transaction)
_PG_REFUSALS = ("25006", "42501", "25001")
_PG_REFUSED_TEXT = (
    "cannot insert multiple commands into a prepared statement",
    "is not allowed in a non-volatile function",  # a write hidden in query_to_xml()
)
_MAX_MESSAGE = 400


def one_line(message: str, secrets: Iterable[str] = ()) -> str:
    """``message`` on one line, shortened, with every secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        message = message.replace(secret, "***")
    text = " ".join(message.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


@contextmanager
def _resolved(resource: Any) -> Iterator[Any]:
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


def run_silver(ch: ClickHouseResource, statement: str) -> Rows:
    """Run an already checked statement on Silver with ``readonly=1``."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    try:
        with ch.session() as client:
            result = client.query(statement, settings={"readonly": 1})
            return list(result.column_names), [tuple(r) for r in result.result_rows]
    except ClickHouseError as err:
        message = one_line(str(err), _dsn_secrets(ch.dsn))
        if any(name in message for name in _CH_REFUSALS):
            raise ReadOnlyError(f"Silver refused the statement (read-only): {message}") from None
        raise QueryError(f"Silver: {message}") from None


def _dsn_secrets(dsn: str) -> tuple[str, ...]:
    from urllib.parse import urlsplit

    password = urlsplit(dsn).password
    return (dsn, password) if password else (dsn,)


def run_gold(pg: PostgresResource, statement: str) -> Rows:
    """Run a statement on Gold as the reader, read-only, as one prepared statement.

    The statement is sent as written, even if the gate was bypassed: Postgres then refuses
    a second statement (prepared), a write (read-only transaction, reader role) and the
    superuser's functions (reader role).
    """
    try:
        with pg.connect() as conn:
            if not conn.read_only:
                raise ConfigError("Gold queries need the postgres resource's reader role.")
            cur = conn.cursor()
            cur.execute(statement, prepare=True)  # type: ignore[arg-type]  # user SQL, checked
            columns = [d.name for d in cur.description or []]
            return columns, [tuple(r) for r in cur.fetchall()]
    except psycopg.Error as err:
        message = one_line(str(err).strip() or type(err).__name__, pg.secrets())
        if err.sqlstate in _PG_REFUSALS or any(t in message for t in _PG_REFUSED_TEXT):
            raise ReadOnlyError(f"Gold refused the statement: {message}") from None
        raise QueryError(f"Gold: {message}") from None


def run_query(resources: Mapping[str, Any], target: str, statement: str) -> Rows:
    """Check one read-only statement, then run it on ``silver`` or ``gold``."""
    if target == "silver":
        checked = check_statement(statement, "clickhouse")
        with _resolved(resources["clickhouse"]) as ch:
            return run_silver(ch, checked)
    checked = check_statement(statement, "postgres")
    with _resolved(resources["gold_reader"]) as pg:
        return run_gold(pg, checked)


def render(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    """Rows as CSV or JSON text (the table format is drawn by the CLI)."""
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        writer.writerows(rows)
        return out.getvalue()
    return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2)
