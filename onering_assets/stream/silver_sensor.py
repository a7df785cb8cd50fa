"""After a stream batch lands in Bronze, rebuild Silver flights for the months it touched.

The stream asset writes into Bronze flights' folder, which is not a Dagster dependency of
Silver (selecting ``+silver/flights`` must never start a consumer), so nothing would rebuild
Silver when a batch lands. This sensor reads each new ``stream/flights_events``
materialization and requests one run of ``silver/flights`` (with its checks) per month the
batch landed rows in; the run key (batch id and month) makes a re-evaluated event request
nothing twice. It runs wherever Dagster's daemon runs (``onering dev``, compose); it is on by
default and can be stopped in the UI like any sensor.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from onering_assets.partitions import MONTHLY
from onering_assets.stream.assets import KEY

SILVER_FLIGHTS = dg.AssetKey(["silver", "flights"])
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


@dg.asset_sensor(
    asset_key=KEY,
    name="stream_to_silver",
    job=JOB,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Rebuilds Silver flights for each month a stream batch landed rows in.",
)
def stream_to_silver(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> Iterator[dg.RunRequest | dg.SkipReason]:
    materialization = asset_event.asset_materialization
    requests = silver_requests(materialization.metadata if materialization else {})
    if not requests:
        yield dg.SkipReason("the latest stream batch landed no rows")
        return
    context.log.info(
        f"stream batch landed rows for {', '.join(r.partition_key or '' for r in requests)}"
    )
    yield from requests
