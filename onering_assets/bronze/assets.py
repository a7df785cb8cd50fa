"""Bronze assets: landed source tables written to the lake as Parquet, one file a month."""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from onering_assets.bronze.ingest import Landed, outcomes
from onering_assets.bronze.landing import ingesting, suite_outcome, wants_suite
from onering_assets.catalog import BronzeTable
from onering_assets.checks.outcome import Outcome, not_published
from onering_assets.checks.specs import blocking_failures, bronze_checks
from onering_assets.factory import build_table_asset, materialize_result, table_spec
from onering_assets.metadata import catalog_labels
from onering_assets.partitions import MONTHLY, selected_partitions
from onering_assets.resources import LakeResource, SourceResource
from onering_assets.resources.source import Landing
from onering_assets.resources.spark import SparkResource


def _stored(lake: LakeResource, table: BronzeTable, partitions: list[str] | None) -> Landed:
    """What is published in the lake, for checks run alone."""
    if not table.partitioned:
        keys = [""]
    else:
        keys = partitions or [
            p for p in MONTHLY.get_partition_keys() if lake.exists("bronze", table.name, p)
        ]
    by_partition = {
        k: lake.read("bronze", table.name, k or None)
        if lake.exists("bronze", table.name, k or None)
        else pa.table({})
        for k in keys
    }
    columns = next((tuple(t.column_names) for t in by_partition.values() if t.num_columns), ())
    # What the published batches set aside when they landed, so checks run alone see it too.
    batches = sorted(
        {
            b
            for t in by_partition.values()
            if "_batch_id" in t.column_names
            for b in t["_batch_id"].unique().to_pylist()
        }
    )
    return Landed(
        by_partition,
        lake.read_quarantined("bronze", table.name, batches, "unassigned"),
        tuple(c for c in columns if not c.startswith("_")),
        malformed=lake.read_quarantined("bronze", table.name, batches, "malformed"),
    )


def _audit(table: BronzeTable, landed: Landed) -> list[Outcome]:
    results = outcomes(table, landed)
    if wants_suite(table):
        results.append(suite_outcome(table, list(landed.by_partition.values())))
    return results


def _land(
    context: dg.AssetExecutionContext, source: SourceResource, name: str
) -> Iterator[Landing]:
    """The landed file a piece at a time, parsed by the configured engine.

    pyarrow parses it a piece at a time here; Spark parses it whole.
    """
    if source.engine != "spark":
        yield from source.land_chunks(name)
        return
    from onering_assets.bronze import spark_ingest

    spark: SparkResource = context.resources.spark
    context.log.info(f"parsing {name} with Spark ({spark.master})")
    yield spark_ingest.land(spark.session(), source, name, spark.scratch_dir)


def build_bronze_asset(table: BronzeTable) -> dg.AssetsDefinition:
    """One Bronze table: read the landed file once, publish the selected months together."""
    decls = bronze_checks(table)

    def body(context: dg.AssetExecutionContext, materialize: bool) -> Iterator:
        lake: LakeResource = context.resources.lake
        partitions = selected_partitions(context) if table.partitioned else None
        if not materialize:
            stored = _stored(lake, table, partitions)
            if not any(t.num_columns for t in stored.by_partition.values()):
                yield not_published([d.name for d in decls], f"bronze.{table.name}")
                return
            yield _audit(table, stored)
            return
        source: SourceResource = context.resources.source
        with ingesting(table, lake, context.run_id, partitions, context.log.info) as ingest:
            ingest.land(_land(context, source, table.name))
            results = [*ingest.checks(), *ingest.suite()]
            context.log.info(f"read {ingest.rows} rows of {table.name} from {ingest.label}")
            if blocking_failures(decls, results):
                ingest.quarantine()
                context.log.error(
                    f"quarantined this batch under quarantine/bronze/{table.name}/{context.run_id}"
                )
            yield results
            counts = ingest.publish()
        for key, rows in counts.items():
            context.log.info(f"bronze.{table.name} {key}: {rows} rows")
        yield materialize_result(
            counts,
            table.partitioned,
            uri=lake.uri("bronze", table.name),
            source=ingest.label,
            batch_id=context.run_id,
            **catalog_labels(table),
        )

    resources = {"lake", "source", "spark"}
    return build_table_asset(table_spec(table, []), decls, resources, body)
