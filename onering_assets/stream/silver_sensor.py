"""After a stream batch lands in Bronze, rebuild Silver flights for the months it touched.

The stream asset writes into Bronze flights' folder, which is not a Dagster dependency of
Silver (selecting ``+silver/flights`` must never start a consumer), so nothing would rebuild
Silver when a batch lands. This sensor reads every ``stream/flights_events``
materialization since its cursor and requests one run of ``silver/flights`` (with its
checks) per month each batch delivered (also the months whose rows an attempt killed before
its acknowledgement had already landed, which the redelivered batch finds in Bronze). The
run key (the digest of the messages received, and the month) makes a re-evaluated event
request nothing twice; a record whose metadata is not the stream asset's is logged and
skipped, never blocking later ones. It runs wherever Dagster's daemon runs (``onering dev``,
compose); it is on by default and can be stopped in the UI like any sensor. A kill after the
acknowledgement and before the materialization is recorded leaves nothing for it to read:
build Silver for that month by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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


def _value(metadata: Mapping[str, Any], name: str) -> Any:
    entry = metadata.get(name)
    return getattr(entry, "value", entry)


def _months(metadata: Mapping[str, Any]) -> list[str]:
    """The months a batch delivered: ``months``, else those ``rows_by_month`` landed rows in.

    Raises:
        ValueError: neither is a list of month keys / a mapping of month to a row count.
    """
    months = _value(metadata, "months")
    if months is not None:
        if not isinstance(months, list) or not all(isinstance(m, str) for m in months):
            raise ValueError(f"months is not a list of months: {months!r}")
        return sorted(set(months))
    rows = _value(metadata, "rows_by_month") or {}
    if not isinstance(rows, Mapping) or not all(
        isinstance(m, str) and isinstance(n, int) and not isinstance(n, bool)
        for m, n in rows.items()
    ):
        raise ValueError(f"rows_by_month is not month -> row count: {rows!r}")
    return sorted(m for m, n in rows.items() if n > 0)


def silver_requests(metadata: Mapping[str, Any]) -> list[dg.RunRequest]:
    """One run of Silver flights per month a stream batch delivered.

    Raises:
        ValueError: the materialization's metadata is not what the stream asset records.
    """
    months = [m for m in _months(metadata) if m in MONTHLY.get_partition_keys()]
    batch = _value(metadata, "received_id") or _value(metadata, "batch_id")
    if months and not (isinstance(batch, str) and batch):
        raise ValueError(f"no batch digest to key its runs by: {batch!r}")
    return [
        dg.RunRequest(
            run_key=f"{batch}/{month}", partition_key=month, tags={"onering/stream_batch": batch}
        )
        for month in months
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
        try:
            requests += silver_requests(materialization.metadata if materialization else {})
        except ValueError as err:  # never stuck on one record: later batches still count
            context.log.warning(f"stream materialization {record.storage_id} skipped: {err}")
    cursor = str(found.records[-1].storage_id) if found.records else context.cursor
    if not requests:
        skip = (
            "no new stream batch" if not found.records else "the new stream batches landed no rows"
        )
        return dg.SensorResult(skip_reason=skip, cursor=cursor)
    months = ", ".join(sorted({r.partition_key or "" for r in requests}))
    context.log.info(f"{len(found.records)} stream batch(es) landed rows for {months}")
    return dg.SensorResult(run_requests=requests, cursor=cursor)
