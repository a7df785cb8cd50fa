"""Silver assets: declared ClickHouse SQL over Bronze, staged, audited, then published."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import dagster as dg

from onering_assets.catalog import SqlTable
from onering_assets.change.datadiff import diff_metadata, diffed
from onering_assets.change.state import record_deployment
from onering_assets.checks.names import DATA_DIFF
from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import CheckDecl, blocking_failures, silver_checks
from onering_assets.factory import build_table_asset, materialize_result, table_spec
from onering_assets.metadata import catalog_labels
from onering_assets.namespaces import building, of_run
from onering_assets.partitions import selected_partitions
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.silver.steps import SilverBuild, published_partitions


def _run(
    context: dg.AssetExecutionContext,
    table: SqlTable,
    build: SilverBuild,
    materialize: bool,
    decls: list[CheckDecl],
    what: str,
) -> Iterator:
    """Checks alone audit what is published and write nothing (no DDL, no rows).

    A build whose blocking checks fail publishes nothing; its rejects are kept as evidence
    in ``silver.<table>_rejects_failed`` under the run id, and the failed checks say how to
    query them.
    """
    if not build.has_input() or (not materialize and not build.published()):
        yield not_published([d.name for d in decls], what)
        return
    if not materialize:
        yield build.audit(staged=False) + diffed(table, None)
        return
    build.create()
    started = time.perf_counter()
    try:
        build.stage()
        context.log.info(f"staged silver.{table.name} in {time.perf_counter() - started:.2f} s")
        diff = build.diff()
        context.log.info(f"silver.{table.name} against what is published: {diff.summary()}")
        outcomes = build.audit(staged=True) + diffed(table, diff)
        if blocking_failures(decls, outcomes):
            outcomes = with_evidence(context, build, outcomes)
        yield outcomes
        rows = build.rows_by_partition()
        reasons = build.staged_reject_reasons()
        build.publish()
    finally:
        build.drop()
    published = (build.partitions or sorted(rows)) if table.partitioned else None
    record_deployment(context, build.client, table, published)
    total, rejected = build.totals()
    yield materialize_result(
        rows,
        table.partitioned,
        table_rows=total,
        rejected_rows_total=rejected,
        rejects_by_reason=reasons,
        rejects_query=build.rejects_query(),
        **diff_metadata(diff),
        seconds=round(time.perf_counter() - started, 3),
        **catalog_labels(table),
    )


def with_evidence(
    context: dg.AssetExecutionContext, build: SilverBuild, outcomes: list[Outcome]
) -> list[Outcome]:
    """Keep the failed build's rejects; each failed check then names the query to see them.

    Not for ``data_diff``: it failed on how many published rows the build moves, which its
    own metadata shows (rows added, removed, changed), not on the rows it rejected.
    """
    about_rows = {id(o) for o in outcomes if not o.passed and o.name != DATA_DIFF}
    if not about_rows:
        return outcomes
    try:
        query = build.keep_failed_rejects()
    except Exception as err:  # evidence must never hide the failure it is evidence of
        context.log.warning(f"could not keep the rejected rows as evidence: {err}")
        return outcomes
    note = f'; this run\'s rejected rows: onering sql "{query}"'
    return [
        replace(o, summary=o.summary + note, metadata={**o.metadata, "rejects_query": query})
        if id(o) in about_rows
        else o
        for o in outcomes
    ]


def build_silver_asset(table: SqlTable) -> dg.AssetsDefinition:
    """One Silver table: stage the declared SELECT, audit, publish atomically."""
    decls = silver_checks(table)
    deps = [dg.AssetDep(dg.AssetKey([layer, name])) for layer, name in table.upstream]

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        with building(of_run(context)):
            yield from build(context, materialize)

    def build(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        ch: ClickHouseResource = context.resources.clickhouse
        lake: LakeResource = context.resources.lake
        partitions = selected_partitions(context) if table.partitioned else None
        what = f"silver.{table.name}"
        if not materialize and table.partitioned:
            # Checks alone audit the months asked for that have landed (all by default).
            landed = published_partitions(table, lake)
            if partitions:
                what = f"silver.{table.name} for {', '.join(partitions)}"
            partitions = [p for p in partitions if p in landed] if partitions else landed
        if not materialize and ch.data_dir is not None and not ch.data_dir.exists():
            # Opening an embedded store that was never created would create it.
            yield not_published([d.name for d in decls], what)
            return
        locks = ch.locks() if materialize else None
        try:
            yield from _run(
                context,
                table,
                SilverBuild(ch.get_client(), table, lake, partitions, context.run_id, locks),
                materialize,
                decls,
                what,
            )
        finally:
            if locks is not None:
                locks.close()

    return build_table_asset(table_spec(table, deps), decls, {"clickhouse", "lake"}, body)
