"""Gold assets: marts computed in ClickHouse from Silver, published to Postgres atomically.

Why compute in ClickHouse: Silver already lives there, so the aggregate runs where the data
is (0.1 s over 3.4 M rows) and only the small result (hundreds of rows) crosses to Postgres.
Computing in Postgres would first copy every Silver row across (see bench/pipeline.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg

from onering_assets.catalog import SqlTable
from onering_assets.checks.specs import gold_checks
from onering_assets.factory import build_table_asset, materialize_result, table_spec
from onering_assets.gold import publish
from onering_assets.gold.audit import MartAudit
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


def build_gold_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Gold mart: compute in ClickHouse, then stage, audit, publish in one transaction."""
    decls = gold_checks(table)
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        ch: ClickHouseResource = context.resources.clickhouse
        pg: PostgresResource = context.resources.postgres
        client = ch.get_client()
        migrate(pg)
        partitions = selected_partitions(context) if table.partitioned else None
        if not materialize:
            with pg.connect() as conn:
                yield MartAudit.published(conn, table, client, partitions).all()
            return
        started = time.perf_counter()
        result = publish.compute(client, table, partitions)
        context.log.info(
            f"computed {result.num_rows} rows in ClickHouse "
            f"in {time.perf_counter() - started:.2f} s"
        )
        with pg.connect() as conn:
            publish.stage(conn, table, result)
            yield MartAudit.staged(conn, table, client, partitions, result).all()
            total = publish.publish(conn, table, partitions)
        yield materialize_result(
            publish.rows_by_month(table, result),
            table.partitioned,
            table_rows=total,
            seconds=round(time.perf_counter() - started, 3),
        )

    return build_table_asset(table_spec(table, deps), decls, {"clickhouse", "postgres"}, body)
