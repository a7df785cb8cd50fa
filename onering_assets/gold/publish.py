"""Gold as plain steps: compute in ClickHouse, stage in Postgres, publish in one transaction.

The asset and the benchmark's raw baseline run these same functions.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from onering_assets import journal
from onering_assets.catalog import SqlTable, load_catalog
from onering_assets.change import datadiff
from onering_assets.change.datadiff import DataDiff
from onering_assets.lineage.sql import replace_tables
from onering_assets.namespaces import gold_schema, silver_db
from onering_assets.partitions import month_bounds

if TYPE_CHECKING:
    import pyarrow as pa
    from clickhouse_connect.driver.client import Client


def target(table: SqlTable) -> sql.Identifier:
    """The published mart: production's, or the environment's being built."""
    return sql.Identifier(gold_schema(), table.name)


def stage_name(table: SqlTable) -> sql.Identifier:
    return sql.Identifier(f"{table.name}__stage")


def compute_sql(
    table: SqlTable, partitions: list[str] | None, read: dict[str, str] | None = None
) -> str:
    """The declared SELECT, reading only the selected partitions of monthly Silver tables.

    ``read`` names another relation for some Silver tables (a staged build, by `plan --diff`).
    """
    replacements = {}
    for _, name in table.upstream:
        upstream = load_catalog().sql_table("silver", name)
        source = (read or {}).get(name) or f"{silver_db()}.`{name}`"
        if partitions and upstream.partitioned:
            source = f"(SELECT * FROM {source} WHERE _partition IN {{partitions:Array(String)}})"
        replacements[name] = source
    return replace_tables(table.sql, "silver", replacements)


def compute(
    client: Client,
    table: SqlTable,
    partitions: list[str] | None,
    read: dict[str, str] | None = None,
) -> pa.Table:
    return client.query_arrow(
        compute_sql(table, partitions, read),
        parameters={"partitions": partitions or []},
        settings=table.settings,
    )


def rows_by_month(table: SqlTable, rows: pa.Table) -> dict[str, int]:
    """Computed rows per ``YYYY-MM`` of the partition column (``""`` for a whole mart)."""
    if not table.partition_column:
        return {"": rows.num_rows}
    months = Counter(d.strftime("%Y-%m") for d in rows[table.partition_column].to_pylist())
    return dict(months)


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def stage(conn: psycopg.Connection, table: SqlTable, rows: pa.Table) -> None:
    """COPY the computed rows into a temporary table shaped like the mart.

    The stage has no constraints, so the checks find duplicate keys instead of COPY failing.
    """
    conn.execute(
        sql.SQL("CREATE TEMP TABLE {s} (LIKE {t} INCLUDING DEFAULTS) ON COMMIT DROP").format(
            s=stage_name(table), t=target(table)
        )
    )
    declared = {c.name for c in table.columns}
    columns = [c for c in rows.column_names if c in declared]
    copy_sql = sql.SQL("COPY {s} ({c}) FROM STDIN").format(
        s=stage_name(table), c=sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    with conn.cursor().copy(copy_sql) as copy:
        for row in rows.select(columns).to_pylist():
            copy.write_row([_clean(row[c]) for c in columns])


def window_filter(table: SqlTable, partitions: list[str] | None) -> tuple[sql.Composed, tuple]:
    """`` WHERE <partition column> in the months`` for monthly marts, else nothing."""
    if partitions and table.partition_column:
        start, end = month_bounds(partitions)
        column = sql.Identifier(table.partition_column)
        return sql.SQL(" WHERE {c} >= %s AND {c} < %s").format(c=column), (start, end)
    return sql.Composed([]), ()


def window_literal(table: SqlTable, partitions: list[str] | None) -> sql.Composed:
    """The same window with its bounds as literals, for a relation used in many queries."""
    if partitions and table.partition_column:
        start, end = month_bounds(partitions)
        return sql.SQL(" WHERE {c} >= {s} AND {c} < {e}").format(
            c=sql.Identifier(table.partition_column), s=sql.Literal(start), e=sql.Literal(end)
        )
    return sql.Composed([])


def diff(conn: psycopg.Connection, table: SqlTable, partitions: list[str] | None) -> DataDiff:
    """The staged rows against the published ones of the same months (by key)."""
    old = sql.SQL("(SELECT * FROM {t}").format(t=target(table))
    old += window_literal(table, partitions) + sql.SQL(")")
    columns = [(c.name, c.type) for c in table.columns]
    new = stage_name(table).as_string(conn)
    month = (
        sql.SQL("to_char({c}, 'YYYY-MM')").format(c=sql.Identifier(table.partition_column))
        if table.partition_column
        else sql.SQL("''")
    )
    query = datadiff.diff_query(
        new, old.as_string(conn), table.key, columns, "postgres", month.as_string(conn)
    )
    row = conn.execute(query).fetchone()  # type: ignore[arg-type]
    return datadiff.parse_row(row or (), columns)


def publish(conn: psycopg.Connection, table: SqlTable, partitions: list[str] | None) -> int:
    """Replace the run's months (or the whole mart) with the staged rows; return the total."""
    where, bounds = window_filter(table, partitions)
    # Two runs publishing the same mart at once (a Postgres server, nothing else serializes
    # them) would each DELETE then INSERT under READ COMMITTED: duplicates. One at a time.
    # Bounded: a holder that never lets go (a stuck session) is a retryable error, not a hang.
    conn.execute("SET LOCAL lock_timeout = '120s'")
    conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
        (f"publish:{gold_schema()}.{table.name}",),
    )
    conn.execute(sql.SQL("DELETE FROM {t}").format(t=target(table)) + where, bounds)
    conn.execute(
        sql.SQL("INSERT INTO {t} SELECT * FROM {s}").format(t=target(table), s=stage_name(table))
    )
    total = conn.execute(sql.SQL("SELECT count(*) FROM {t}").format(t=target(table))).fetchone()
    journal.fault("gold.publish.before_commit")
    return int(total[0]) if total else 0
