"""After a stream batch lands in Bronze, rebuild Silver flights for the months it touched.

The stream asset writes into Bronze flights' folder, which is not a Dagster dependency of
Silver (selecting ``+silver/flights`` must never start a consumer), so nothing would rebuild
Silver when a batch lands. This sensor reads every ``stream/flights_events``
materialization since its cursor and requests one run of ``silver/flights`` (with its
checks) per month each batch landed rows in; the run key (batch id and month) makes a
re-evaluated event request nothing twice. It runs wherever Dagster's daemon runs
(``onering dev``, compose); it is on by default and can be stopped in the UI like any
sensor.
"""

from __future__ import annotations

import dagster as dg

from onering_assets.partitions import MONTHLY
from onering_assets.stream.assets import KEY

SILVER_FLIGHTS = dg.AssetKey(["silver", "flights"])
BATCHES_PER_TICK = 100  # more wait for the next tick (the cursor is the last one read)
JOB = dg.define_asset_job(
    "stream_to_silver",
    selection=dg.AssetSelection.assets(SILVER_FLIGHTS),
    partitions_def=MONTHLY,
    description="Silver flights for one month, after a stream batch landed rows in it.",
)


def silver_requests(metadata: dg.RawMetadataMapping) -> list[dg.RunRequest]:
    """One run of Silver flights per month a stream batch landed rows in."""
    value = metadata.get("rows_by_month")
    rows_by_month = getattr(value, "value", value) or {}
    batch = getattr(metadata.get("batch_id"), "value", metadata.get("batch_id")) or ""
    return [
        dg.RunRequest(
            run_key=f"{batch}/{month}",
            partition_key=month,
            tags={"onering/stream_batch": str(batch)},
        )
        for month, rows in sorted(rows_by_month.items())
        if rows and month in MONTHLY.get_partition_keys()
    ]


@dg.sensor(
    name="stream_to_silver",
    job=JOB,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds Silver flights for each month a stream batch landed rows in.",
)
def stream_to_silver(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Every stream materialization since the cursor, oldest first.

    Several batches may land between two ticks; each one's months are requested.
    """
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=KEY, after_storage_id=after),
        limit=BATCHES_PER_TICK,
        ascending=True,
    )
    requests: list[dg.RunRequest] = []
    for record in found.records:
        materialization = record.asset_materialization
        requests += silver_requests(materialization.metadata if materialization else {})
    cursor = str(found.records[-1].storage_id) if found.records else context.cursor
    if not requests:
        skip = (
            "no new stream batch" if not found.records else "the new stream batches landed no rows"
        )
        return dg.SensorResult(skip_reason=skip, cursor=cursor)
    months = ", ".join(sorted({r.partition_key or "" for r in requests}))
    context.log.info(f"{len(found.records)} stream batch(es) landed rows for {months}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
