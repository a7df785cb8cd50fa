"""Bronze -> Silver -> Gold on the real embedded stores (chDB, PostgreSQL 18, Parquet lake).

Every Gold mart is recomputed here from the landed CSV files with pandas and no project
code: the Silver rules (parsing, rejections, the physical ``ranges`` declared in the Silver
``.yml`` files, de-duplication) and the marts' definitions are re-implemented from README
and the declared SQL, then every column of every row is compared.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import yaml

from tests.conftest import (
    gold_rows,
    layer_keys,
    read_source,
    run,
    settings_for,
    silver_query,
    silver_rows,
)

pytestmark = pytest.mark.slow
SILVER_YML = Path(__file__).resolve().parents[1] / "platform/analytics/clickhouse/silver"
NULLS = {"": None, "NA": None}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance):
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    summary = run(settings, instance=instance)
    assert summary.success, summary.failures
    return settings, summary


# --------------------------------------------------------------- Silver, re-implemented


def declared_ranges(table: str) -> dict[str, tuple[float, float]]:
    """``ranges: {column: [min, max]}`` from the Silver .yml (absent: no range rule)."""
    spec = yaml.safe_load((SILVER_YML / f"{table}.yml").read_text()) or {}
    return {c: (float(lo), float(hi)) for c, (lo, hi) in (spec.get("ranges") or {}).items()}


def raw(frame: pd.DataFrame, column: str) -> Any:
    """A landed column with ``NA`` and empty as null (Bronze's rule)."""
    return frame[column].replace(NULLS).astype(object)


def as_int(values: Any, low: int, high: int) -> Any:
    """ClickHouse ``to(U)IntNOrNull``: digits only (a sign if signed), within the type."""
    pattern = r"-?\d+" if low < 0 else r"\d+"
    text = values.astype("string").str.strip()
    number: Any = pd.to_numeric(
        text.where(text.str.fullmatch(pattern).fillna(False)), errors="coerce"
    )
    return number.where((number >= low) & (number <= high)).astype("Int64")


def as_float(values: Any) -> Any:
    number: Any = pd.to_numeric(values, errors="coerce")
    return number.astype("Float64")


def code(values: Any) -> Any:
    return values.astype("string").str.strip().str.upper()


def out_of_range(typed: pd.DataFrame, ranges: dict[str, tuple[float, float]]) -> Any:
    """Rows with a non-null value outside its declared range (inclusive)."""
    bad = pd.Series(False, index=typed.index)
    for column, (low, high) in ranges.items():
        value = typed[column].astype("Float64")
        bad |= (value.notna() & ((value < low) | (value > high))).fillna(False).astype(bool)
    return bad


def unparsed(frame: pd.DataFrame, typed: pd.DataFrame, columns: list[str]) -> Any:
    """A value was landed but does not parse (the declared SQL's ``invalid <column>``)."""
    bad = pd.Series(False, index=frame.index)
    for column in columns:
        bad |= (raw(frame, column).notna() & typed[column].isna()).astype(bool)
    return bad


def keep_last(kept: Any, key: list[str]) -> Any:
    """One ingestion: of rows sharing a key, the one landed last in the file wins."""
    return kept.drop_duplicates(subset=key, keep="last")


def silver_flights(landed: pd.DataFrame) -> Any:
    """Typed flights that Silver keeps (flights.sql rules, declared ranges, de-duplication)."""
    f = pd.DataFrame(index=landed.index)
    for column in ("year", "month", "day", "dep_time", "sched_dep_time", "arr_time"):
        f[column] = as_int(raw(landed, column), 0, 2**16 - 1)
    f["sched_arr_time"] = as_int(raw(landed, "sched_arr_time"), 0, 2**16 - 1)
    f["air_time"] = as_int(raw(landed, "air_time"), 0, 2**16 - 1)
    f["distance"] = as_int(raw(landed, "distance"), 0, 2**32 - 1)
    f["flight"] = as_int(raw(landed, "flight"), 0, 2**32 - 1)
    for column in ("dep_delay", "arr_delay"):
        f[column] = as_int(raw(landed, column), -(2**31), 2**31 - 1)
    for column in ("carrier", "origin", "dest"):
        f[column] = code(raw(landed, column))
    sched = f["sched_dep_time"]
    rejected = (
        f[["year", "month", "day"]].isna().any(axis=1)
        | ~f["month"].between(1, 12).fillna(False).astype(bool)
        | ~f["day"].between(1, 31).fillna(False).astype(bool)
        | f["carrier"].fillna("").eq("")
        | f["flight"].isna()
        | f["origin"].fillna("").eq("")
        | sched.isna()
        | (sched % 100 >= 60).fillna(False).astype(bool)
        | (sched >= 2400).fillna(False).astype(bool)
        | unparsed(landed, f, ["dep_delay", "arr_delay"])
        | out_of_range(f, declared_ranges("flights"))
    )
    kept = f[~rejected].copy()
    kept["flight_date"] = [
        date(int(y), int(m), int(d))
        for y, m, d in zip(kept["year"], kept["month"], kept["day"], strict=True)
    ]
    return keep_last(kept, ["flight_date", "carrier", "flight", "origin"])


def silver_weather(landed: pd.DataFrame) -> Any:
    """Typed weather that Silver keeps (weather.sql rules, declared ranges, de-duplication)."""
    w = pd.DataFrame(index=landed.index)
    w["origin"] = code(raw(landed, "origin"))
    w["time_hour"] = pd.to_datetime(raw(landed, "time_hour"), errors="coerce", utc=True)
    for column in ("year", "month", "day"):
        w[column] = as_int(raw(landed, column), 0, 2**16 - 1)
    w["hour"] = as_int(raw(landed, "hour"), 0, 2**8 - 1)
    w["wind_dir"] = as_int(raw(landed, "wind_dir"), 0, 2**16 - 1)
    for column in ("temp", "dewp", "humid", "wind_speed", "wind_gust", "precip", "pressure"):
        w[column] = as_float(raw(landed, column))
    w["visib"] = as_float(raw(landed, "visib"))
    rejected = (
        w["origin"].fillna("").eq("")
        | w["time_hour"].isna()
        | w[["year", "month", "day"]].isna().any(axis=1)
        | unparsed(landed, w, ["temp", "wind_speed", "precip", "visib"])
        | out_of_range(w, declared_ranges("weather"))
    )
    kept = w[~rejected].copy()
    kept["observed_date"] = [
        date(int(y), int(m), int(d))
        for y, m, d in zip(kept["year"], kept["month"], kept["day"], strict=True)
    ]
    return keep_last(kept, ["origin", "time_hour"])


def silver_airline_names() -> dict[str, str]:
    a = read_source("airlines")
    carrier, name = code(raw(a, "carrier")), raw(a, "name").astype("string").str.strip()
    kept = pd.DataFrame({"carrier": carrier, "name": name})
    kept = kept[kept["carrier"].fillna("").ne("") & kept["name"].fillna("").ne("")]
    return dict(keep_last(kept, ["carrier"]).itertuples(index=False, name=None))


# --------------------------------------------------------------- Gold, re-implemented


def mean(values: Any) -> float | None:
    """``avg`` over non-null values; null when there are none."""
    present = values.dropna().astype(float)
    return float(present.mean()) if len(present) else None


def expected_carrier_monthly(f: Any) -> dict[Any, tuple]:
    names = silver_airline_names()
    rows = {}
    for (carrier, month), g in f.groupby(
        [f["carrier"], f["flight_date"].map(lambda d: d.replace(day=1))]
    ):
        known = g["arr_delay"].dropna()
        rows[(carrier, month)] = (
            names.get(carrier),
            len(g),
            int(g["dep_time"].isna().sum()),
            mean(g["dep_delay"]),
            mean(g["arr_delay"]),
            100 * int((known > 15).sum()) / len(known) if len(known) else None,
        )
    return rows


def expected_routes(f: Any) -> dict[Any, tuple]:
    return {
        key: (len(g), mean(g["arr_delay"]), mean(g["distance"]), mean(g["air_time"]))
        for key, g in f.groupby(["origin", "dest"])
    }


def expected_airport_daily(f: Any, w: Any) -> dict[Any, tuple]:
    weather = {
        key: tuple(
            None if (m := mean(g[c])) is None else round(m, 6)
            for c in ("precip", "visib", "wind_speed")
        )
        for key, g in w.groupby(["origin", "observed_date"])
    }
    return {
        key: (len(g), mean(g["dep_delay"]), *weather.get(key, (None, None, None)))
        for key, g in f.groupby(["origin", "flight_date"])
    }


def same(got: Any, want: Any) -> bool:
    """Equal, with a tolerance only for floating point.

    Float sums depend on addition order; a value rounded to 6 decimals can then land one
    unit of the 6th decimal apart (7.3362215 computed as ...2149 or ...2151).
    """
    if isinstance(want, float):
        return got is not None and math.isclose(got, want, rel_tol=1e-9, abs_tol=1.001e-6)
    return got == want


def assert_mart(rows: list[tuple], expected: dict[Any, tuple], key_len: int) -> None:
    got = {tuple(r[:key_len]): tuple(r[key_len:]) for r in rows}
    assert len(got) == len(rows), "duplicate keys in Gold"
    assert set(got) == set(expected)
    wrong = [
        (key, got[key], want)
        for key, want in expected.items()
        if not all(same(g, w) for g, w in zip(got[key], want, strict=True))
    ]
    assert not wrong, wrong[:3]


@pytest.fixture(scope="module")
def independent(flights_jan_feb: pd.DataFrame, weather_jan_feb: pd.DataFrame):
    return silver_flights(flights_jan_feb), silver_weather(weather_jan_feb)


# --------------------------------------------------------------- tests


def test_every_layer_is_built_with_all_checks_passing(built, independent) -> None:
    settings, summary = built
    flights, weather = independent
    assert summary.rows["bronze/flights"] == 51955
    assert summary.rows["silver/flights"] == len(flights)
    assert summary.rows["silver/weather"] == len(weather)
    assert not [c for c in summary.checks if not c[2]]
    assert len(summary.checks) >= 40
    lake = Path(settings.lake_dir) / "bronze" / "flights"
    assert sorted(p.name for p in lake.iterdir()) == ["month=2013-01", "month=2013-02"]


def test_carrier_monthly_performance_matches_an_independent_computation(built, independent) -> None:
    settings, _ = built
    flights, _ = independent
    rows = gold_rows(settings, "carrier_monthly_performance")
    assert_mart([(r[0], r[2], r[1], *r[3:]) for r in rows], expected_carrier_monthly(flights), 2)


def test_route_performance_matches_an_independent_computation(built, independent) -> None:
    settings, _ = built
    flights, _ = independent
    assert_mart(gold_rows(settings, "route_performance"), expected_routes(flights), 2)


def test_airport_daily_weather_matches_an_independent_computation(built, independent) -> None:
    settings, _ = built
    flights, weather = independent
    expected = expected_airport_daily(flights, weather)
    assert len(expected) == 3 * 59  # three airports, every day of January and February
    assert_mart(gold_rows(settings, "airport_daily_weather"), expected, 2)
    # The 1,048 mph reading at EWR (2013-02-12 08:00 UTC) is out of range: not in Gold.
    assert expected[("EWR", date(2013, 2, 12))][4] < 40


def test_silver_has_local_timestamps_and_no_rejects_on_clean_data(built) -> None:
    settings, _ = built
    first = silver_query(
        settings,
        "SELECT toString(sched_dep_at), toString(time_hour), timezone() FROM silver.flights"
        " WHERE flight_date = '2013-01-01' AND carrier = 'UA' AND flight = 1545 AND origin = 'EWR'",
    )
    assert first[0][:2] == ("2013-01-01 05:15:00", "2013-01-01 05:00:00")
    assert silver_query(settings, "SELECT count() FROM silver.flights_rejects") == [(0,)]


def test_rerun_is_idempotent(built, instance: dg.DagsterInstance) -> None:
    settings, _ = built
    before_silver = silver_rows(settings, "flights", "flight_date, carrier, flight, origin")
    before_gold = {
        t: gold_rows(settings, t)
        for t in ("carrier_monthly_performance", "route_performance", "airport_daily_weather")
    }
    summary = run(settings, instance=instance)
    assert summary.success
    assert silver_rows(settings, "flights", "flight_date, carrier, flight, origin") == before_silver
    assert {t: gold_rows(settings, t) for t in before_gold} == before_gold


def test_checks_run_alone_against_published_tables(built, instance: dg.DagsterInstance) -> None:
    from onering_assets.definitions import build_definitions
    from onering_assets.runner import check_keys, execute

    settings, _ = built
    defs = build_definitions(settings)
    keys = layer_keys(settings)  # the medallion `built` materialized
    summary = execute(defs, instance, assets=set(), checks=check_keys(defs, keys), progress=False)
    assert summary.success, summary.failures
    assert not summary.rows  # nothing was materialized
    assert len(summary.checks) == len(check_keys(defs, keys))
    assert all(passed for _, _, passed, _ in summary.checks)


def test_selecting_one_gold_table_runs_only_it(built, instance: dg.DagsterInstance) -> None:
    settings, _ = built
    key = dg.AssetKey(["gold", "route_performance"])
    summary = run(settings, instance=instance, select={key})
    assert summary.success
    assert set(summary.rows) == {"gold/route_performance"}
