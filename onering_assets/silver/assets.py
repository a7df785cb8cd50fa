"""Silver assets: declared ClickHouse SQL over Bronze, staged, audited, then published."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg

from onering_assets.catalog import SqlTable
from onering_assets.checks.outcome import not_published
from onering_assets.checks.specs import silver_checks
from onering_assets.factory import build_table_asset, materialize_result, table_spec
from onering_assets.partitions import selected_partitions
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.silver.steps import SilverBuild, published_partitions


def _run(
    context: dg.AssetExecutionContext,
    table: SqlTable,
    build: SilverBuild,
    materialize: bool,
    check_names: list[str],
) -> Iterator:
    """Checks alone audit what is published and write nothing (no DDL, no rows)."""
    if not build.has_input() or (not materialize and not build.published()):
        yield not_published(check_names, f"silver.{table.name}")
        return
    if not materialize:
        yield build.audit(staged=False)
        return
    build.create()
    started = time.perf_counter()
    try:
        build.stage()
        context.log.info(f"staged silver.{table.name} in {time.perf_counter() - started:.2f} s")
        yield build.audit(staged=True)
        rows = build.rows_by_partition()
        build.publish()
    finally:
        build.drop()
    total, rejected = build.totals()
    yield materialize_result(
        rows,
        table.partitioned,
        table_rows=total,
        rejected_rows_total=rejected,
        seconds=round(time.perf_counter() - started, 3),
    )


def build_silver_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Silver table: stage the declared SELECT, audit, publish atomically."""
    decls = silver_checks(table)
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        ch: ClickHouseResource = context.resources.clickhouse
        lake: LakeResource = context.resources.lake
        partitions = selected_partitions(context) if table.partitioned else None
        if not materialize and table.partitioned and not partitions:
            partitions = published_partitions(table, lake)
        if not materialize and ch.data_dir is not None and not ch.data_dir.exists():
            # Opening an embedded store that was never created would create it.
            yield not_published([d.name for d in decls], f"silver.{table.name}")
            return
        locks = ch.locks() if materialize else None
        try:
            yield from _run(
                context,
                table,
                SilverBuild(ch.get_client(), table, lake, partitions, context.run_id, locks),
                materialize,
                [d.name for d in decls],
            )
        finally:
            if locks is not None:
                locks.close()

    return build_table_asset(table_spec(table, deps), decls, {"clickhouse", "lake"}, body)
