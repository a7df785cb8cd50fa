"""Silver assets: declared ClickHouse SQL over Bronze, staged, audited, then published."""

from __future__ import annotations

import time
from collections.abc import Iterator

import dagster as dg

from onering_assets.catalog import SqlTable
from onering_assets.checks.ge import run_suite
from onering_assets.checks.names import GE_SUITE
from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import silver_checks
from onering_assets.factory import build_table_asset, table_spec
from onering_assets.partitions import MONTHLY, selected_partitions
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.silver import plan
from onering_assets.silver.audit import Audited, audit


def bronze_sources(
    table: SqlTable, lake: LakeResource, partitions: list[str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Lake table functions for each Bronze table the SQL reads, and their parameters."""
    sources, params = {}, {}
    for i, (_, name) in enumerate(table.upstream):
        fn, fn_params = lake.clickhouse_source("bronze", name, partitions)
        for param, value in fn_params.items():
            fn = fn.replace(f"{{{param}:", f"{{{param}_{i}:")
            params[f"{param}_{i}"] = value
        sources[name] = fn
    return sources, params


def published_partitions(table: SqlTable, lake: LakeResource) -> list[str] | None:
    if not table.partitioned:
        return None
    name = table.upstream[0][1]
    return [p for p in MONTHLY.get_partition_keys() if lake.exists("bronze", name, p)]


def _with_suite(client, table: SqlTable, rows_table: str, outcomes: list[Outcome]) -> list[Outcome]:
    if any(d.name == GE_SUITE for d in silver_checks(table)) and table.ge_suite:
        frame = client.query_df(f"SELECT * FROM {rows_table}")
        outcomes.append(run_suite(table.ge_suite, frame))
    return outcomes


def build_silver_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Silver table: stage the declared SELECT, audit, publish atomically."""
    decls = silver_checks(table)
    names = plan.SilverNames(table.name)
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        ch: ClickHouseResource = context.resources.clickhouse
        lake: LakeResource = context.resources.lake
        client = ch.get_client()
        partitions = selected_partitions(context) if table.partitioned else None
        if not materialize and table.partitioned and not partitions:
            partitions = published_partitions(table, lake)
        if not materialize and (
            partitions == []
            or (not lake.exists("bronze", table.upstream[0][1]) and not table.partitioned)
        ):
            yield not_published([d.name for d in decls], f"silver.{table.name}")
            return
        sources, params = bronze_sources(table, lake, partitions)
        bronze_sql = sources[table.upstream[0][1]]
        for statement in plan.create_statements(table):
            client.command(statement)
        if not materialize:
            audited = Audited(table, names.target, names.rejects, bronze_sql, params, partitions)
            yield _with_suite(client, table, names.target, audit(client, audited))
            return
        started = time.perf_counter()
        try:
            for statement in plan.stage_statements(table, plan.source_sql(table, sources)):
                client.command(statement, parameters=params)
            context.log.info(f"staged {names.stage} in {time.perf_counter() - started:.2f} s")
            audited = Audited(
                table, names.stage, names.rejects_stage, bronze_sql, params, partitions
            )
            yield _with_suite(client, table, names.stage, audit(client, audited))
            for statement, settings in plan.publish_statements(table, partitions):
                client.command(statement, settings=settings)
        finally:
            for statement in plan.drop_work_tables(table):
                client.command(statement)
        rows = client.query(f"SELECT count() FROM {names.target}").result_rows[0][0]
        rejects = client.query(f"SELECT count() FROM {names.rejects}").result_rows[0][0]
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "rejected_rows_total": rejects,
                "partitions": ", ".join(partitions) if partitions else "all",
                "seconds": round(time.perf_counter() - started, 3),
            }
        )

    return build_table_asset(table_spec(table, deps), decls, {"clickhouse", "lake"}, body)
