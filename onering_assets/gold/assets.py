"""Gold assets: marts computed in ClickHouse from Silver, published to Postgres atomically.

Why compute in ClickHouse: Silver already lives there, so the aggregate runs where the data
is (0.1 s over 3.4 M rows) and only the small result (hundreds of rows) crosses to Postgres.
Computing in Postgres would first copy every Silver row across (see bench/pipeline.py).
Checks alone (``onering check``) only read: no changeset is applied, the audit runs in
read-only transactions, and a store or table that does not exist yet is reported as not
published instead of being created.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from onering_assets import journal
from onering_assets.catalog import SqlTable
from onering_assets.change.datadiff import diff_metadata, diffed
from onering_assets.change.state import record_deployment
from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import CheckDecl, gold_checks
from onering_assets.factory import build_table_asset, materialize_result, table_spec
from onering_assets.gold import publish
from onering_assets.gold.audit import MartAudit
from onering_assets.gold.ddl import apply_changelogs
from onering_assets.gold.reconcile import Reconciliation, silver_read
from onering_assets.metadata import catalog_labels
from onering_assets.namespaces import building, current, of_run
from onering_assets.partitions import selected_partitions
from onering_assets.resources import ClickHouseResource, LakeResource, PostgresResource
from onering_assets.resources.postgres import stop_embedded
from onering_assets.settings import PLATFORM_DIR

LIQUIBASE_DIR = PLATFORM_DIR / "versioning" / "liquibase"
_migrated: set[str] = set()
# Test-only fault points (``ONERING_FAULT=<point>.stop_postgres`` or ``.kill_postgres``): stop
# or SIGKILL the embedded server while this process keeps running. ``gold.compute``: after
# this process started it, while ClickHouse computes; ``gold.publish``: inside the publish
# transaction, after its DELETE + INSERT, before COMMIT.
POSTGRES_FAULTS = {"stop_postgres": False, "kill_postgres": True}


def migrate(pg: PostgresResource, env: str = "") -> list[str]:
    """Apply the Liquibase changelogs once per process and database.

    In an environment, production's pending changesets run on its schema instead (every
    build: they are few, and a changeset added meanwhile is run too).
    """
    if env:
        from onering_assets.change import env_ddl

        with pg.connect() as conn:
            return env_ddl.apply_gold(conn, env)
    conninfo = pg.conninfo()
    if conninfo in _migrated:
        return []
    with pg.connect() as conn:
        applied = apply_changelogs(conn, LIQUIBASE_DIR)
    _migrated.add(conninfo)
    return applied


def gold_table_exists(pg: PostgresResource, table: SqlTable) -> bool:
    """Whether ``gold.<table>`` exists, without creating anything on the way.

    An embedded store that was never created is not started: starting it would create it.
    """
    if pg.embedded_dir and not (Path(pg.embedded_dir) / "PG_VERSION").exists():
        return False
    with pg.connect() as conn:
        conn.read_only = True
        found = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"gold.{table.name}",)
        ).fetchone()
    return bool(found and found[0])


def check_published(
    table: SqlTable,
    resources: Any,
    partitions: list[str] | None,
    decls: list[CheckDecl],
) -> list[Outcome]:
    """Checks alone: audit what is published in read-only transactions; never migrate."""
    pg: PostgresResource = resources.postgres
    if not gold_table_exists(pg, table):
        return not_published([d.name for d in decls], f"gold.{table.name}")
    ch: ClickHouseResource = resources.clickhouse
    with pg.connect() as conn:
        # Postgres itself refuses any write from here on.
        conn.read_only = True
        audit = MartAudit.published(conn, table, ch.get_client(), resources.lake, partitions)
        return audit.all() + diffed(table, None)


def _postgres_fault(pg: PostgresResource, point: str) -> None:
    """Test-only: stop (or SIGKILL) the embedded server when ``ONERING_FAULT`` says so."""
    where, _, how = os.environ.get(journal.FAULT_ENV, "").rpartition(".")
    kill = POSTGRES_FAULTS.get(how) if where == point else None
    if kill is not None and pg.embedded_dir:
        stop_embedded(Path(pg.embedded_dir), kill=kill)


def build_gold_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Gold mart: compute in ClickHouse, then stage, audit, publish in one transaction."""
    decls = gold_checks(table)
    recon = Reconciliation.of(table)  # a bad declaration fails at definitions load
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        with building(of_run(context)):
            yield from build(context, materialize)

    def build(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        partitions = selected_partitions(context) if table.partitioned else None
        if not materialize:
            yield check_published(table, context.resources, partitions, decls)
            return
        ch: ClickHouseResource = context.resources.clickhouse
        pg: PostgresResource = context.resources.postgres
        lake: LakeResource = context.resources.lake
        client = ch.get_client()
        migrate(pg, current())
        started = time.perf_counter()
        read = silver_read(client, lake, recon, partitions) if recon else None
        result = publish.compute(client, table, partitions)
        _postgres_fault(pg, "gold.compute")
        context.log.info(
            f"computed {result.num_rows} rows in ClickHouse "
            f"in {time.perf_counter() - started:.2f} s"
        )
        with pg.connect() as conn:
            publish.stage(conn, table, result)
            diff = publish.diff(conn, table, partitions)
            context.log.info(f"gold.{table.name} against what is published: {diff.summary()}")
            audit = MartAudit.staged(conn, table, client, lake, partitions, result, read)
            yield audit.all() + diffed(table, diff)
            total = publish.publish(conn, table, partitions)
            _postgres_fault(pg, "gold.publish")
        months = publish.rows_by_month(table, result)
        published = (partitions or sorted(months)) if table.partitioned else None
        record_deployment(context, client, table, published)
        yield materialize_result(
            months,
            table.partitioned,
            table_rows=total,
            **diff_metadata(diff),
            seconds=round(time.perf_counter() - started, 3),
            **catalog_labels(table),
        )

    return build_table_asset(
        table_spec(table, deps), decls, {"clickhouse", "postgres", "lake"}, body
    )
