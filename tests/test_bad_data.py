"""Planted bad data is rejected or quarantined with counts, and Gold keeps its previous version."""

from datetime import date
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from onering_assets.checks import names
from onering_assets.resources import ClickHouseResource
from onering_assets.retention import prune_failed_rejects
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
    # The summary says why, and how to see them.
    assert summary.reject_reasons["silver/flights"] == reasons
    query = summary.rejects_query["silver/flights"]
    assert query.endswith(
        "FROM silver.flights_rejects WHERE _partition BETWEEN '2013-01' AND '2013-02'"
    )
    assert len(silver_query(settings, query)) == 8
    assert summary.skipped == []


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
    # The failed batch's rejects stay queryable as evidence, keyed by run, unpublished.
    query = (
        "SELECT _partition, _reject_reason, _raw FROM silver.flights_rejects_failed"
        f" WHERE _run_id = '{summary.run_id}'"
    )
    assert query in checks[("silver/flights", names.REJECT_RATE)]
    evidence = silver_query(settings, query)
    assert len(evidence) == 5196
    assert {r[1] for r in evidence} == {"invalid arr_delay"}
    assert reject_reasons(settings, "flights") == {}  # nothing published into the rejects
    assert set(summary.skipped) >= {f"gold/{t}" for t in GOLD}

    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        assert prune_failed_rejects(client, days=30) == []
        client.command(
            "ALTER TABLE silver.flights_rejects_failed UPDATE _failed_at = now() - INTERVAL 31 DAY"
            " WHERE 1",
            settings={"mutations_sync": 2},
        )
        assert prune_failed_rejects(client, days=30) == [
            f"silver.flights_rejects_failed:{summary.run_id}"
        ]
    assert silver_query(settings, "SELECT count() FROM silver.flights_rejects_failed") == [(0,)]


# --------------------------------------------------------------- physical ranges

WIND_MAX_MPH = 220  # weather.yml's wind_speed range; the landed EWR reading is 1,048 mph


def reject_reasons(settings, table: str) -> dict[str, int]:
    return dict(
        silver_query(
            settings, f"SELECT _reject_reason, count() FROM silver.{table}_rejects GROUP BY 1"
        )
    )


@pytest.fixture(scope="module")
def ranged(
    tmp_path_factory: pytest.TempPathFactory,
    make_source,
    flights_jan_feb: pd.DataFrame,
    weather_jan_feb: pd.DataFrame,
    instance: dg.DagsterInstance,
):
    """A build of a January-February source with impossible values planted in it."""
    flights = flights_jan_feb.copy()
    flights.loc[[40, 41], "dep_delay"] = "5000"  # more than three days late
    flights.loc[50, "air_time"] = "0"  # landed without flying
    flights.loc[60, "distance"] = "20000"  # longer than half the Earth's circumference
    copy = flights.iloc[[70]].copy()
    copy["arr_delay"] = "-999"  # the same flight, landed later, arriving 16 h early
    flights = pd.concat([flights, copy], ignore_index=True)
    weather = weather_jan_feb.copy()
    jfk = [i for i, origin in enumerate(weather["origin"].tolist()) if origin == "JFK"]
    weather.loc[jfk[5], "humid"] = "150"
    weather.loc[jfk[6], "temp"] = "nan"  # parses as a float, and is no reading
    settings = settings_for(
        tmp_path_factory.mktemp("state"), make_source(flights=flights, weather=weather)
    )
    summary = run(settings, instance=instance)
    return settings, summary, flights


def test_out_of_range_rows_are_rejected_with_the_column_named(
    ranged, flights_jan_feb: pd.DataFrame, weather_jan_feb: pd.DataFrame
) -> None:
    settings, summary, flights = ranged
    assert summary.success, summary.failures
    assert reject_reasons(settings, "flights") == {
        "out of range: dep_delay": 2,
        "out of range: air_time": 1,
        "out of range: distance": 1,
        "out of range: arr_delay": 1,
    }
    assert reject_reasons(settings, "weather") == {
        "out of range: wind_speed": 1,  # the real EWR reading, 2013-02-12 08:00 UTC
        "out of range: humid": 1,
        "out of range: temp": 1,
    }
    raw = silver_query(
        settings,
        "SELECT _raw FROM silver.flights_rejects WHERE _reject_reason = 'out of range: distance'",
    )
    assert '"distance":"20000"' in raw[0][0]  # the landed row is kept whole
    landed, kept = len(flights_jan_feb) + 1, len(flights_jan_feb) - 4
    assert silver_query(settings, "SELECT count() FROM silver.flights") == [(kept,)]
    # The in-range row of a duplicated key wins even though the out-of-range copy landed last.
    first = flights.iloc[70]
    key = (
        first["carrier"],
        int(first["flight"]),
        first["origin"],
        date(2013, int(first["month"]), int(first["day"])),
    )
    rows = silver_query(
        settings, "SELECT carrier, flight, origin, flight_date, arr_delay FROM silver.flights"
    )
    assert [r[4] for r in rows if r[:4] == key] == [int(first["arr_delay"])]
    weather_kept = len(weather_jan_feb) - 3
    assert silver_query(settings, "SELECT count() FROM silver.weather") == [(weather_kept,)]
    assert silver_query(
        settings, "SELECT max(wind_speed) <= 220, countIf(isNaN(temp)) FROM silver.weather"
    ) == [(True, 0)]
    checks = {(a, c): (p, d) for a, c, p, d in summary.checks}
    assert (
        f"bronze {landed} = silver {kept} + rejects 5"
        in checks[("silver/flights", names.RECONCILIATION)][1]
    )
    assert checks[("silver/weather", names.VALUE_RANGES)] == (
        True,
        "10 columns within their ranges",
    )
    assert sum(r[2] for r in gold_rows(settings, "route_performance")) == kept


def test_gold_daily_wind_comes_only_from_in_range_readings(
    published, weather_jan_feb: pd.DataFrame
) -> None:
    """EWR's 1,048 mph reading is rejected; Gold's mean is that of the day's other readings."""
    settings, _ = published
    rejects = silver_query(
        settings,
        "SELECT JSONExtractString(_raw, 'origin'), JSONExtractString(_raw, 'time_hour'), "
        "_reject_reason, _raw FROM silver.weather_rejects",
    )
    assert [r[:3] for r in rejects] == [("EWR", "2013-02-12T08:00:00Z", "out of range: wind_speed")]
    assert '"wind_speed":"1048.36058"' in rejects[0][3]
    # Independently of the pipeline: the landed CSV rows of that local day, as numbers.
    day = [
        r
        for r in weather_jan_feb.to_dict("records")
        if (r["origin"], r["year"], r["month"], r["day"]) == ("EWR", "2013", "2", "12")
    ]
    kept = [r for r in day if not (number(r["wind_speed"]) or 0) > WIND_MAX_MPH]
    assert len(day) - len(kept) == 1  # the whole row goes, not only its wind speed
    gold = {(r[0], str(r[1])): r for r in gold_rows(settings, "airport_daily_weather")}
    got = gold[("EWR", "2013-02-12")]
    assert got[4:] == pytest.approx(
        (mean("precip", kept), mean("visib", kept), mean("wind_speed", kept)), abs=1e-6
    )
    assert mean("wind_speed", day) > 50  # what Gold published before: 56.4 mph
    assert got[6] < 20


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:  # NA, empty
        return None


def mean(column: str, rows: list[dict]) -> float:
    values = [v for r in rows if (v := number(r[column])) is not None]
    return round(sum(values) / len(values), 6)


def test_value_ranges_fails_on_a_published_table_verified_alone(ranged) -> None:
    """Values written into published Silver around the pipeline are caught by checks alone."""
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import check_keys, execute

    settings, _, _ = ranged
    defs = build_definitions(settings)
    weather = {dg.AssetKey(["silver", "weather"])}

    def checks_alone() -> dict[str, tuple[bool, str]]:
        summary = execute(defs, instance_for_checks, assets=set(), checks=check_keys(defs, weather))
        assert not summary.rows  # nothing was materialized
        return {c: (p, d) for _, c, p, d in summary.checks}

    with dg.instance_for_test() as instance_for_checks:
        assert checks_alone()[names.VALUE_RANGES] == (True, "10 columns within their ranges")
        with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
            for column, value, hour in (("wind_speed", 1048.36, 10), ("humid", 150.0, 11)):
                client.command(
                    f"ALTER TABLE silver.weather UPDATE {column} = {{v:Float64}} "
                    "WHERE origin = 'LGA' AND time_hour = toDateTime({t:String}, 'UTC')",
                    parameters={"v": value, "t": f"2013-01-15 {hour}:00:00"},
                    settings={"mutations_sync": 2},
                )
        results = checks_alone()
    failed = {name for name, (passed, _) in results.items() if not passed}
    assert failed == {names.VALUE_RANGES}  # keys, counts and schema are untouched
    assert results[names.VALUE_RANGES][1] == (
        "1 rows where humid is outside [0, 100]; 1 rows where wind_speed is outside [0, 220]"
    )


def test_an_implausible_daily_wind_blocks_gold(
    published, make_source, weather_jan_feb: pd.DataFrame, instance: dg.DagsterInstance
) -> None:
    """Readings within Silver's range, but a 60 mph day: Gold's suite blocks the mart."""
    settings, before = published
    weather = weather_jan_feb.copy()
    day = [
        i
        for i, (origin, month, d) in enumerate(
            zip(weather["origin"], weather["month"], weather["day"], strict=True)
        )
        if (origin, month, d) == ("EWR", "1", "15")
    ]
    weather.loc[day, "wind_speed"] = "60"
    summary = rerun_with(published, make_source(weather=weather), instance)
    assert not summary.success
    assert failed_checks(summary) == {("gold/airport_daily_weather", names.GE_SUITE)}
    checks = {(a, c): d for a, c, _, d in summary.checks}
    assert "avg_wind_speed" in checks[("gold/airport_daily_weather", names.GE_SUITE)]
    assert gold_rows(settings, "airport_daily_weather") == before["gold"]["airport_daily_weather"]


def test_values_that_do_not_type_are_rejected_not_nulled(
    tmp_path: Path,
    make_source,
    flights_jan_feb: pd.DataFrame,
    weather_jan_feb: pd.DataFrame,
    instance: dg.DagsterInstance,
) -> None:
    """Text, overflows and negatives in typed columns are rejected as `invalid <column>`.

    Typed with `…OrNull`, they would otherwise be published as null: a `dep_time` of 99999
    would count as a cancelled flight in Gold.
    """
    flights = flights_jan_feb.copy()
    flights.loc[5, "dep_time"] = "99999"  # overflows UInt16
    flights.loc[6, "air_time"] = "abc"
    flights.loc[7, "arr_time"] = "12:30"
    flights.loc[8, "dep_time"] = "-5"  # negative in an unsigned column
    weather = weather_jan_feb.copy()
    weather.loc[3, "pressure"] = "bogus"
    weather.loc[4, "wind_dir"] = "99999"
    settings = settings_for(tmp_path, make_source(flights=flights, weather=weather))

    summary = run(settings, instance=instance)

    assert summary.success, summary.failures
    assert reject_reasons(settings, "flights") == {
        "invalid dep_time": 2,
        "invalid air_time": 1,
        "invalid arr_time": 1,
    }
    assert reject_reasons(settings, "weather") == {
        "invalid pressure": 1,
        "invalid wind_dir": 1,
        "out of range: wind_speed": 1,  # the real EWR reading, 2013-02-12 08:00 UTC
    }
    cancelled = sum(r[4] for r in gold_rows(settings, "carrier_monthly_performance"))
    expected = sum(v in ("", "NA") for v in flights.drop(index=[5, 6, 7, 8])["dep_time"])
    assert cancelled == expected
