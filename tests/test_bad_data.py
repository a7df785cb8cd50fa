"""Planted bad data is rejected or quarantined with counts, and Gold keeps its previous version."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from onering_assets.checks import names
from tests.conftest import gold_rows, run, settings_for, silver_query, silver_rows

pytestmark = pytest.mark.slow
GOLD = ("carrier_monthly_performance", "route_performance", "airport_daily_weather")
FLIGHT_KEY = "flight_date, carrier, flight, origin"


def failed_checks(summary) -> set[tuple[str, str]]:
    return {(asset, check) for asset, check, passed, _ in summary.checks if not passed}


def test_bad_rows_are_rejected_with_reasons_and_counts(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    bad = flights_jan_feb.copy()
    bad.loc[[10, 11, 12], "dep_delay"] = "abc"  # wrong type
    bad.loc[[20, 21], "carrier"] = ""  # null key
    bad.loc[30, "flight"] = "A12"  # a key that is not a number
    planted = pd.concat([bad, bad.iloc[[100, 101]]], ignore_index=True)  # duplicate keys
    settings = settings_for(tmp_path, make_source(flights=planted))

    summary = run(settings, instance=instance)

    assert summary.success, summary.failures
    reasons = dict(
        silver_query(
            settings, "SELECT _reject_reason, count() FROM silver.flights_rejects GROUP BY 1"
        )
    )
    assert reasons == {
        "invalid dep_delay": 3,
        "missing key: carrier": 2,
        "missing or invalid key: flight": 1,
        "duplicate key": 2,
    }
    assert silver_query(settings, "SELECT count() FROM silver.flights") == [(51955 - 6,)]
    raw = silver_query(
        settings,
        "SELECT _raw FROM silver.flights_rejects WHERE _reject_reason = 'invalid dep_delay'",
    )
    assert '"dep_delay":"abc"' in raw[0][0]  # the landed row is kept whole
    checks = {(a, c): d for a, c, _, d in summary.checks}
    assert (
        "bronze 51957 = silver 51949 + rejects 8"
        in checks[("silver/flights", names.RECONCILIATION)]
    )
    assert sum(r[2] for r in gold_rows(settings, "route_performance")) == 51949


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance):
    """A good build whose Silver and Gold every blocked run below must leave untouched."""
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    assert run(settings, instance=instance).success
    before = {
        "silver": silver_rows(settings, "flights", FLIGHT_KEY),
        "gold": {t: gold_rows(settings, t) for t in GOLD},
        "bronze": sorted(
            p.stat().st_mtime_ns
            for p in (settings.lake_dir / "bronze" / "flights").rglob("*.parquet")
        ),
    }
    return settings, before


def assert_unchanged(settings, before) -> None:
    assert silver_rows(settings, "flights", FLIGHT_KEY) == before["silver"]
    assert {t: gold_rows(settings, t) for t in GOLD} == before["gold"]


def rerun_with(published, source: Path, instance: dg.DagsterInstance):
    settings, _ = published
    return run(settings_for(settings.state_dir, source), instance=instance)


def quarantined(settings, run_id: str) -> list[str]:
    folder = settings.lake_dir / "quarantine" / "bronze" / "flights" / run_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_missing_column_is_quarantined_and_gold_keeps_its_version(
    published, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    settings, before = published
    summary = rerun_with(
        published, make_source(flights=flights_jan_feb.drop(columns=["dep_delay"])), instance
    )
    assert not summary.success
    assert ("bronze/flights", names.REQUIRED_COLUMNS) in failed_checks(summary)
    assert "silver/flights" not in summary.rows and "gold/route_performance" not in summary.rows
    assert quarantined(settings, summary.run_id) == ["2013-01.parquet", "2013-02.parquet"]
    assert (
        sorted(
            p.stat().st_mtime_ns
            for p in (settings.lake_dir / "bronze" / "flights").rglob("*.parquet")
        )
        == before["bronze"]
    )
    assert_unchanged(settings, before)


def test_empty_file_is_refused_and_gold_keeps_its_version(
    published, make_source, instance: dg.DagsterInstance
) -> None:
    settings, before = published
    summary = rerun_with(published, make_source(raw_flights=""), instance)
    assert not summary.success
    assert {
        ("bronze/flights", names.NOT_EMPTY),
        ("bronze/flights", names.REQUIRED_COLUMNS),
    } <= failed_checks(summary)
    assert_unchanged(settings, before)


def test_too_many_rejects_block_silver_publication(
    published, make_source, flights_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    settings, before = published
    bad = flights_jan_feb.copy()
    bad.loc[bad.index % 10 == 0, "arr_delay"] = "late"  # 10% of rows, limit is 5%
    summary = rerun_with(published, make_source(flights=bad), instance)
    assert not summary.success
    assert failed_checks(summary) == {("silver/flights", names.REJECT_RATE)}
    checks = {(a, c): d for a, c, _, d in summary.checks}
    assert (
        "5196 of 51955 rows rejected (10.00%, limit 5%)"
        in checks[("silver/flights", names.REJECT_RATE)]
    )
    assert any("nothing was published" in f for f in summary.failures)
    assert_unchanged(settings, before)
    assert silver_query(
        settings,
        "SELECT count() FROM system.tables WHERE database = 'silver' AND name LIKE '%stage%'",
    ) == [(0,)]
