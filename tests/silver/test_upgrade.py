"""A state folder from before ``_row`` and run-scoped staging is upgraded in place.

The old layout is built by hand, as the previous version left it: Bronze files without
``_row``, Silver tables and rejects without ``_row``, staging tables with the old fixed names.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.resources import ClickHouseResource
from onering_assets.silver import plan
from tests.conftest import run, settings_for, silver_query

pytestmark = pytest.mark.slow
FLIGHTS = dg.AssetKey(["silver", "flights"])
BRONZE = dg.AssetKey(["bronze", "flights"])
OLD_STAGING = ("flights__stage", "flights_rejects__stage", "flights__candidates")


def make_old_state(settings, instance) -> None:
    assert run(settings, instance=instance, select={BRONZE}).success
    for path in (settings.lake_dir / "bronze" / "flights").glob("month=*/data.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["_row"]), path)
    table = load_catalog().sql_table("silver", "flights")
    old_ddl = [s.replace(", `_row` UInt64", "") for s in plan.create_statements(table)[:3]]
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        for statement in old_ddl:
            client.command(statement)
        client.command(
            "INSERT INTO silver.flights (flight_date, carrier, flight, origin, dest, "
            "sched_dep_at, sched_dep_time, cancelled, _partition) VALUES "
            "('2013-01-01', 'ZZ', 1, 'EWR', 'ORD', '2013-01-01 05:00:00', 500, 0, '2013-01')"
        )
        for name in OLD_STAGING:
            client.command(f"CREATE TABLE silver.`{name}` AS silver.flights")


def columns(settings, table: str) -> list[str]:
    return [
        r[0]
        for r in silver_query(
            settings,
            f"SELECT name FROM system.columns WHERE database = 'silver' AND table = '{table}' "
            "ORDER BY position",
        )
    ]


def test_old_state_is_upgraded_in_place(tmp_path: Path, make_source, instance) -> None:
    settings = settings_for(tmp_path / "state", make_source())
    make_old_state(settings, instance)
    assert "_row" not in columns(settings, "flights")

    summary = run(settings, instance=instance, select={FLIGHTS})
    assert summary.success, summary.failures
    assert columns(settings, "flights")[-1] == "_row"
    rejects = columns(settings, "flights_rejects")
    assert rejects[rejects.index("_source") + 1] == "_row"
    staging = silver_query(
        settings, "SELECT name FROM system.tables WHERE database = 'silver' ORDER BY name"
    )
    names = [name for (name,) in staging]
    assert {"flights", "flights_rejects", "flights_rejects_failed"} <= set(names)
    assert [n for n in names if plan.STAGING_NAME.search(n)] == []  # old-named staging dropped
    # Files landed without _row read it as 0; the old row is replaced with its month.
    assert silver_query(
        settings, "SELECT _partition, count(), max(_row) FROM silver.flights GROUP BY 1 ORDER BY 1"
    ) == [("2013-01", 27004, 0), ("2013-02", 24951, 0)]

    summary = run(settings, instance=instance, select={BRONZE, FLIGHTS})
    assert summary.success, summary.failures
    assert silver_query(settings, "SELECT min(_row) > 0, count() FROM silver.flights") == [
        (True, 51955)
    ]
