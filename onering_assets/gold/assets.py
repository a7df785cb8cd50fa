"""Gold assets: marts computed in ClickHouse from Silver, published to Postgres atomically.

Why compute in ClickHouse: Silver already lives there, so the aggregate runs where the data
is (0.1 s over 3.4 M rows) and only the small result (hundreds of rows) crosses to Postgres.
Computing in Postgres would first copy every Silver row across (see bench/pipeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from onering_assets.catalog import SqlTable
from onering_assets.checks.ge import run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import Outcome
from onering_assets.checks.specs import gold_checks
from onering_assets.factory import build_table_asset, table_spec
from onering_assets.gold import audit, publish
from onering_assets.gold.ddl import apply_changelogs
from onering_assets.partitions import selected_partitions
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.settings import PLATFORM_DIR

LIQUIBASE_DIR = PLATFORM_DIR / "versioning" / "liquibase"
_migrated: set[str] = set()


def migrate(pg: PostgresResource) -> list[str]:
    """Apply the Liquibase changelogs once per process and database."""
    conninfo = pg.conninfo()
    if conninfo in _migrated:
        return []
    with pg.connect() as conn:
        applied = apply_changelogs(conn, LIQUIBASE_DIR)
    _migrated.add(conninfo)
    return applied


def _audit(
    conn: psycopg.Connection,
    table: SqlTable,
    relation: sql.Composable,
    computed: list[str],
    rows: int,
    frame_sql: sql.Composed,
    client: Any,
    partitions: list[str] | None,
) -> list[Outcome]:
    outcomes = [
        audit.column_schema(conn, table, computed),
        audit.not_empty(rows),
        audit.key_unique(conn, table, relation),
    ]
    if table.checks.get("reconcile_sum"):
        silver = publish.silver_flights_sql(partitions)
        outcomes.append(
            audit.reconcile_sum(
                conn, table, relation, client, silver, {"partitions": partitions or []}
            )
        )
    if any(d.name == GE_SUITE for d in gold_checks(table)) and table.ge_suite:
        import pandas as pd

        cur = conn.execute(frame_sql)
        columns = [d.name for d in cur.description or []]
        outcomes.append(run_suite(table.ge_suite, pd.DataFrame(cur.fetchall(), columns=columns)))
    return outcomes


def build_gold_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Gold mart: compute in ClickHouse, then stage, audit, publish in one transaction."""
    decls = gold_checks(table)
    target = publish.target(table)
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        ch: ClickHouseResource = context.resources.clickhouse
        pg: PostgresResource = context.resources.postgres
        client = ch.get_client()
        migrate(pg)
        partitions = selected_partitions(context) if table.partitioned else None
        where, bounds = publish.window_filter(table, partitions)
        if not materialize:
            with pg.connect() as conn:
                rows = conn.execute(
                    sql.SQL("SELECT count(*) FROM {t}").format(t=target) + where, bounds
                ).fetchone()
                computed = [c.name for c in table.columns]
                select = sql.SQL("SELECT * FROM {t}").format(t=target) + where
                yield _audit(
                    conn,
                    table,
                    sql.SQL("({s}) AS published").format(s=select) if bounds else target,
                    computed,
                    rows[0] if rows else 0,
                    select,
                    client,
                    partitions,
                )
            return
        started = time.perf_counter()
        result = publish.compute(client, table, partitions)
        context.log.info(
            f"computed {result.num_rows} rows in ClickHouse "
            f"in {time.perf_counter() - started:.2f} s"
        )
        with pg.connect() as conn:
            publish.stage(conn, table, result)
            yield _audit(
                conn,
                table,
                publish.stage_name(table),
                list(result.column_names),
                result.num_rows,
                sql.SQL("SELECT * FROM {s}").format(s=publish.stage_name(table)),
                client,
                partitions,
            )
            total = publish.publish(conn, table, partitions)
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": total,
                "rows_published": result.num_rows,
                "partitions": ", ".join(partitions) if partitions else "all",
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return build_table_asset(table_spec(table, deps), decls, {"clickhouse", "postgres"}, body)
