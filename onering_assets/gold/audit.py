"""Gold checks, run in Postgres on the staged rows inside the publishing transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from onering_assets.catalog import SqlTable
from onering_assets.checks import names as checks
from onering_assets.checks.outcome import SAMPLE_ROWS, Outcome, schema_outcome

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def column_schema(conn: psycopg.Connection, table: SqlTable, computed: list[str]) -> Outcome:
    actual = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'gold' AND table_name = %s ORDER BY ordinal_position",
        (table.name,),
    ).fetchall()
    declared = [(c.name, c.type) for c in table.columns]
    outcome = schema_outcome(checks.COLUMN_SCHEMA, declared, actual, f"gold.{table.name}")
    missing = [c.name for c in table.columns if c.name not in computed]
    if outcome.passed and missing:
        return Outcome(
            checks.COLUMN_SCHEMA,
            False,
            f"the SQL does not compute {', '.join(missing)}",
            failing=len(missing),
        )
    return outcome


def not_empty(rows: int) -> Outcome:
    return Outcome(
        checks.NOT_EMPTY,
        rows > 0,
        f"{rows} rows" if rows else "no rows computed",
        failing=0 if rows else 1,
    )


def key_unique(conn: psycopg.Connection, table: SqlTable, relation: sql.Composable) -> Outcome:
    key = sql.SQL(", ").join(sql.Identifier(k) for k in table.key)
    dupes = conn.execute(
        sql.SQL("SELECT {k}, count(*) FROM {r} GROUP BY {k} HAVING count(*) > 1").format(
            k=key, r=relation
        )
    ).fetchall()
    label = ", ".join(table.key)
    return Outcome(
        checks.KEY_UNIQUE,
        not dupes,
        f"{len(dupes)} duplicated keys on ({label})" if dupes else f"({label}) is unique",
        failing=len(dupes),
        sample=[list(d) for d in dupes[:SAMPLE_ROWS]],
    )


def reconcile_sum(
    conn: psycopg.Connection,
    table: SqlTable,
    relation: sql.Composable,
    client: Client,
    silver_sql: str,
    params: dict,
) -> Outcome:
    column = table.checks["reconcile_sum"]
    total = conn.execute(
        sql.SQL("SELECT coalesce(sum({c}), 0) FROM {r}").format(
            c=sql.Identifier(column), r=relation
        )
    ).fetchone()
    got = int(total[0]) if total else 0
    expected = int(
        client.query(f"SELECT count() FROM {silver_sql}", parameters=params).result_rows[0][0]
    )
    return Outcome(
        checks.RECONCILIATION,
        got == expected,
        f"sum({column}) = {got}, silver rows = {expected}",
        failing=abs(got - expected),
        metadata={"gold_sum": got, "silver_rows": expected},
    )
