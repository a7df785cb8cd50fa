"""A landed stream batch rebuilds Silver flights for its months (the `stream_to_silver` sensor).

Real pulsar-lite on loopback, the real stream asset, the sensor evaluated by Dagster against
the real instance, and the job it targets run as the daemon would launch it.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from onering_assets.definitions import build_definitions
from onering_assets.resources import SourceResource
from onering_assets.settings import Settings
from onering_assets.stream.assets import KEY
from onering_assets.stream.events import DEFAULT_TOPIC
from onering_assets.stream.replay import replay
from onering_assets.stream.silver_sensor import JOB
from tests.conftest import run, silver_query

JAN, FEB = "2013-01", "2013-02"
BRONZE = dg.AssetKey(["bronze", "flights"])
SILVER = dg.AssetKey(["silver", "flights"])
PLANTED = (
    "SELECT count() FROM silver.flights WHERE flight BETWEEN 9000 AND 9019"
    " AND _partition = '2013-02'"
)


def _batch_id(instance: dg.DagsterInstance) -> str:
    """The digest of the messages the latest stream batch received (its runs' key)."""
    event = instance.get_latest_materialization_event(KEY)
    assert event is not None and event.asset_materialization is not None
    return str(event.asset_materialization.metadata["received_id"].value)


def _plant(url: str, settings: Settings, month: str, count: int) -> None:
    """``count`` flights of ``month`` with keys of their own (9000…), published as events."""
    landing = SourceResource(path=str(settings.source_dir)).land("flights")
    wanted = pa.array([m == str(int(month[5:])) for m in landing.table["month"].to_pylist()])
    rows = landing.table.filter(wanted).slice(0, count)
    lines = landing.lines.filter(wanted).slice(0, count)
    flights = pa.array([str(9000 + i) for i in range(count)], pa.string())
    rows = rows.set_column(rows.column_names.index("flight"), "flight", flights)
    replay(url, DEFAULT_TOPIC, rows, lines, "planted.csv")


def evaluate(
    defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None
) -> tuple[list[dg.RunRequest], str | None]:
    """One tick of the sensor the definitions register (as the daemon would run it)."""
    sensor = defs.resolve_sensor_def("stream_to_silver")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING  # on without a click
    context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
    result = sensor.evaluate_tick(context)
    return list(result.run_requests or []), result.cursor or cursor


def test_a_landed_batch_makes_its_months_queryable_in_silver(
    settings: Settings, url: str, instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(settings)
    built = run(settings, instance=instance, select={BRONZE, SILVER}, first=FEB, last=FEB)
    assert built.success
    assert silver_query(settings, PLANTED) == [(0,)]
    assert evaluate(defs, instance, None)[0] == []  # nothing landed from the stream yet

    _plant(url, settings, FEB, 20)
    assert run(settings, instance=instance, select={KEY}).success
    first = _batch_id(instance)
    _plant(url, settings, JAN, 5)  # a second batch lands before the sensor's next tick
    assert run(settings, instance=instance, select={KEY}).success
    second = _batch_id(instance)
    requests, cursor = evaluate(defs, instance, None)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        (FEB, f"{first}/{FEB}"),
        (JAN, f"{second}/{JAN}"),
    ]
    assert silver_query(settings, PLANTED) == [(0,)]  # not until the requested run

    job = defs.resolve_job_def(JOB.name)
    result = job.execute_in_process(instance=instance, partition_key=requests[0].partition_key)
    assert result.success
    assert silver_query(settings, PLANTED) == [(20,)]  # the streamed rows, queryable
    checks = [e for e in result.get_asset_check_evaluations() if e.asset_key == SILVER]
    assert checks and all(c.passed for c in checks)  # with Silver's checks, which passed

    assert evaluate(defs, instance, cursor)[0] == []  # each batch is requested once


def test_a_materialization_it_cannot_read_is_skipped_and_later_batches_still_count(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """Metadata planted by hand (not the stream asset's) never stops the sensor."""
    defs = build_definitions(settings)
    planted = [
        {"rows_by_month": "2013-02"},  # not a mapping
        {"months": ["2013-02"]},  # no digest to key its runs by
        {"rows_by_month": {"2013-02": "5"}},  # a count that is text
    ]
    for metadata in planted:
        instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=metadata))
    good = {"months": ["2013-03", "2014-07"], "received_id": "stream-good", "rows": 0}
    instance.report_runless_asset_event(dg.AssetMaterialization(KEY, metadata=good))
    requests, cursor = evaluate(defs, instance, None)
    assert [(r.partition_key, r.run_key) for r in requests] == [("2013-03", "stream-good/2013-03")]
    assert evaluate(defs, instance, cursor)[0] == []
