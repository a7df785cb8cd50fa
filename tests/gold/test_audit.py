"""Gold checks that fail for real: planted faults block publication and Gold keeps its version.

Faults are planted three ways: a mart's SQL edited in a temporary copy of ``platform/``
(the asset built from that copy runs against the same stores), rows deleted from Silver
behind the pipeline's back, and bad values in the landed source.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.checks import names
from onering_assets.definitions import build_definitions, resources_for
from onering_assets.errors import ConfigError, UpstreamChangedError
from onering_assets.gold.assets import build_gold_asset
from onering_assets.gold.reconcile import (
    Reconciliation,
    compare,
    independent_count,
    landed_months,
    silver_read,
)
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.runner import check_keys, execute
from onering_assets.settings import PLATFORM_DIR
from tests.conftest import gold_rows, run, settings_for

pytestmark = pytest.mark.slow
GOLD = ("carrier_monthly_performance", "route_performance", "airport_daily_weather")
CARRIER_MONTHLY = dg.AssetKey(["gold", "carrier_monthly_performance"])


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance):
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    summary = run(settings, instance=instance)
    assert summary.success, summary.failures
    return settings


def all_gold(settings) -> dict[str, list[tuple]]:
    return {t: gold_rows(settings, t) for t in GOLD}


def edited_mart(tmp_path: Path, name: str, old: str, new: str) -> dg.AssetsDefinition:
    """The Gold asset built from a copy of ``platform/`` whose mart SQL has one edit."""
    platform = tmp_path / "platform"
    shutil.copytree(PLATFORM_DIR, platform)
    path = platform / "analytics" / "clickhouse" / "gold" / f"{name}.sql"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    return build_gold_asset(load_catalog(platform).sql_table("gold", name))


def materialize_month(asset, settings, instance, month: str = "2013-02"):
    return dg.materialize(
        [asset],
        instance=instance,
        resources=resources_for(settings),
        partition_key=month,
        raise_on_error=False,
    )


def failed(result) -> dict[str, str]:
    return {
        e.check_name: str(e.metadata["summary"].value)
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }


def test_a_mart_that_drops_a_carrier_fails_reconciliation_and_is_not_published(
    published, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    before = all_gold(published)
    asset = edited_mart(
        tmp_path,
        "carrier_monthly_performance",
        "GROUP BY f.carrier, month",
        "WHERE f.carrier != 'UA'\nGROUP BY f.carrier, month",
    )

    result = materialize_month(asset, published, instance)

    assert not result.success
    failures = failed(result)
    assert set(failures) == {names.RECONCILIATION}
    assert "1 group(s) differ" in failures[names.RECONCILIATION]
    assert "'carrier': 'UA', 'month': '2013-02'" in failures[names.RECONCILIATION]
    assert all_gold(published) == before


def test_duplicate_keys_block_publication_and_gold_keeps_its_version(
    published, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    before = all_gold(published)
    # Grouping by origin too gives up to three rows per (carrier, month): the mart's key
    # is no longer unique, while every sum still reconciles.
    asset = edited_mart(
        tmp_path,
        "carrier_monthly_performance",
        "GROUP BY f.carrier, month",
        "GROUP BY f.carrier, month, f.origin",
    )

    result = materialize_month(asset, published, instance)

    assert not result.success
    failures = failed(result)
    assert set(failures) == {names.KEY_UNIQUE}
    assert "duplicated keys on (carrier, month)" in failures[names.KEY_UNIQUE]
    assert all_gold(published) == before


def test_a_computed_column_no_changeset_declares_blocks_publication(
    published, tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    """It would be published without the column, silently: the build stops, naming the
    changeset to add (as Silver does)."""
    before = all_gold(published)
    asset = edited_mart(
        tmp_path,
        "carrier_monthly_performance",
        "AS pct_arr_delayed_15\n",
        "AS pct_arr_delayed_15,\n    max(f.dep_delay) AS max_dep_delay\n",
    )

    result = materialize_month(asset, published, instance)

    assert not result.success
    failures = failed(result)
    assert set(failures) == {names.COLUMN_SCHEMA}
    assert "computes max_dep_delay, which no changeset" in failures[names.COLUMN_SCHEMA]
    assert (
        "ALTER TABLE gold.carrier_monthly_performance ADD COLUMN max_dep_delay"
        in (failures[names.COLUMN_SCHEMA])
    )
    assert all_gold(published) == before


def test_silver_rows_lost_after_publication_fail_gold_reconciliation(
    published, instance: dg.DagsterInstance
) -> None:
    before = all_gold(published)
    with ClickHouseResource(dsn=f"chdb://{published.clickhouse_dir}").session() as client:
        client.command(
            "ALTER TABLE silver.flights DELETE WHERE carrier = 'UA' AND _partition = '2013-02'",
            settings={"mutations_sync": 2},
        )
    try:
        summary = run(published, instance=instance, select={CARRIER_MONTHLY}, first="2013-02")
        assert not summary.success
        failures = {(a, c): d for a, c, ok, d in summary.checks if not ok}
        assert set(failures) == {("gold/carrier_monthly_performance", names.RECONCILIATION)}
        detail = failures[("gold/carrier_monthly_performance", names.RECONCILIATION)]
        assert "'carrier': 'UA', 'month': '2013-02'" in detail
        assert all_gold(published) == before
    finally:
        silver = dg.AssetKey(["silver", "flights"])
        restored = run(published, instance=instance, select={silver}, first="2013-02")
        assert restored.success, restored.failures


def test_a_value_that_breaks_the_gx_suite_blocks_only_that_mart(
    published, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    before = all_gold(published)
    planted = flights_jan_feb.copy()
    # Every Hawaiian flight in February a thousand minutes late: inside Silver's physical
    # range (a day late), outside the mart's suite (avg_dep_delay at most 300).
    hawaiian = (planted["carrier"] == "HA") & (planted["month"] == "2")
    planted.loc[hawaiian, "dep_delay"] = "1000"
    settings = settings_for(published.state_dir, make_source(flights=planted))

    summary = run(settings, instance=instance)

    assert not summary.success
    failures = {(a, c): d for a, c, ok, d in summary.checks if not ok}
    assert set(failures) == {("gold/carrier_monthly_performance", names.GE_SUITE)}
    detail = failures[("gold/carrier_monthly_performance", names.GE_SUITE)]
    assert "expect_column_values_to_be_between(column=avg_dep_delay" in detail
    after = all_gold(published)
    assert after["carrier_monthly_performance"] == before["carrier_monthly_performance"]
    # The other marts published: JFK's daily mean departure delay took the planted values.
    assert after["airport_daily_weather"] != before["airport_daily_weather"]


def declared(checks: dict) -> Reconciliation | None:
    table = load_catalog().sql_table("gold", "carrier_monthly_performance")
    return Reconciliation.of(replace(table, checks=checks))


@pytest.mark.parametrize(
    ("column", "rows_of", "by"),
    [
        ("flights", "flights", None),  # no grain
        ("flights", "flights", {"m": "month"}),  # not a column of the mart
        ("flights", "weather", {"month": "month"}),  # not a table the mart reads
        ("flights", "flights", {"month": "week"}),  # not a grain
        ("nope", "flights", {"month": "month"}),  # not a column of the mart
    ],
)
def test_a_bad_reconciliation_declaration_is_refused(
    column: str, rows_of: str, by: dict | None
) -> None:
    checks = {"reconcile_sum": column, "reconcile_rows_of": rows_of, "reconcile_by": by}
    with pytest.raises(ConfigError, match="reconcile"):
        declared(checks)


def test_every_mart_declares_an_independent_reconciliation_on_its_key() -> None:
    for table in load_catalog().gold:
        recon = Reconciliation.of(table)
        assert recon is not None, table.name
        assert set(recon.by) == set(table.key), table.name


def test_a_group_missing_on_either_side_is_a_difference() -> None:
    recon = Reconciliation("flights", "flights", {"month": "month"})
    assert compare(recon, {("2013-01",): 5}, {("2013-01",): 5}).passed
    missing = compare(recon, {("2013-01",): 5}, {("2013-01",): 5, ("2013-02",): 3})
    assert not missing.passed and missing.failing == 1
    assert missing.sample[0] == {"month": "2013-02", "gold_flights": 0, "landed_minus_rejected": 3}
    extra = compare(recon, {("2013-01",): 5, (None,): 1}, {("2013-01",): 5})
    assert not extra.passed


ROUTES = dg.AssetKey(["gold", "route_performance"])
BRONZE_FLIGHTS = dg.AssetKey(["bronze", "flights"])
SILVER_FLIGHTS = dg.AssetKey(["silver", "flights"])
CHANGING = "cannot reconcile now: silver.flights 2013-02 is not built from what Bronze holds"


def test_a_month_landed_but_not_yet_built_is_retryable_not_a_failed_reconciliation(
    published, instance: dg.DagsterInstance
) -> None:
    """Another run landed February in Bronze and has not published Silver (or failed it)."""
    before = all_gold(published)
    relanded = run(published, instance=instance, select={BRONZE_FLIGHTS}, first="2013-02")
    assert relanded.success, relanded.failures
    try:
        summary = run(published, instance=instance, select={ROUTES})
        assert not summary.success
        assert not summary.failed_checks()
        assert summary.to_dict()["retryable"] is True
        (error,) = summary.errors()
        assert CHANGING in error and "UpstreamChangedError" not in error, error
        assert all_gold(published) == before

        # Checks alone (`onering check`, Airflow's separate check tasks): retryable too.
        defs = build_definitions(published)
        alone = execute(defs, instance, checks=check_keys(defs, {ROUTES}), progress=False)
        assert not alone.failed_checks() and alone.to_dict()["retryable"] is True
        assert any(CHANGING in e for e in alone.errors()), alone.failures
    finally:
        rebuilt = run(published, instance=instance, select={SILVER_FLIGHTS}, first="2013-02")
        assert rebuilt.success, rebuilt.failures
    converged = run(published, instance=instance, select={ROUTES})
    assert converged.success, converged.failures
    assert all_gold(published) == before


def test_silver_republished_while_the_mart_computes_is_refused(
    published, instance: dg.DagsterInstance
) -> None:
    """The batches the mart was computed from are compared with Silver's at audit time."""
    lake = resources_for(published)["lake"]
    assert isinstance(lake, LakeResource)
    recon = Reconciliation.of(load_catalog().sql_table("gold", ROUTES.path[1]))
    assert recon is not None
    with ClickHouseResource(dsn=f"chdb://{published.clickhouse_dir}").session() as client:
        read = silver_read(client, lake, recon, None)
    assert set(read) == {"2013-01", "2013-02"}
    keys = {BRONZE_FLIGHTS, SILVER_FLIGHTS}
    assert run(published, instance=instance, select=keys, first="2013-02").success
    with ClickHouseResource(dsn=f"chdb://{published.clickhouse_dir}").session() as client:
        months = landed_months(lake, recon.rows_of, None)
        with pytest.raises(UpstreamChangedError, match="2013-02 was republished while"):
            independent_count(client, lake, recon, months, read)
        now = silver_read(client, lake, recon, None)
        landed = independent_count(client, lake, recon, months, now)
        kept = client.query("SELECT count() FROM silver.flights").result_rows[0][0]
        assert sum(landed.values()) == kept > 0


def test_checks_alone_for_one_month_count_only_that_month(
    published, instance: dg.DagsterInstance, flights_jan_feb: pd.DataFrame
) -> None:
    """`onering check --partition 2013-02` on Silver reports February's rows, not the table's."""
    defs = build_definitions(published)
    keys = check_keys(defs, {SILVER_FLIGHTS})
    alone = execute(defs, instance, checks=keys, first="2013-02", last="2013-02", progress=False)
    feb = len(flights_jan_feb.query("month == '2'"))
    said = {c: d for a, c, ok, d in alone.checks if a == "silver/flights"}
    assert said[names.NOT_EMPTY] == f"{feb} rows"
    assert said[names.RECONCILIATION] == f"bronze {feb} = silver {feb} + rejects 0"
