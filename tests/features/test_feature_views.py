"""Feature views on the local profile (file offline store, SQLite online store), end to end.

Built once from Silver (Jan–Feb 2013) through the real assets: ClickHouse computes the
rows, the lake keeps them, Feast applies and materializes them; checks run on real data,
then on planted bad values.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from onering_assets.errors import ConfigError
from onering_assets.features import steps
from onering_assets.features.retrieval import feature_store, historical_features, online_features
from onering_assets.features.views import load_views
from onering_assets.resources import ClickHouseResource, LakeResource
from onering_assets.settings import Settings
from onering_assets.summary import RunSummary
from tests.conftest import silver_query
from tests.features.conftest import feature_defs, newest, offline, run_features

if TYPE_CHECKING:
    from feast import FeatureStore

VIEWS = load_views()
CARRIERS = VIEWS.view("carrier_stats")
ROUTES = VIEWS.view("route_stats")
WEATHER = VIEWS.view("origin_weather")


@pytest.fixture(scope="module")
def defs(settings: Settings) -> dg.Definitions:
    return feature_defs(settings)


@pytest.fixture(scope="module")
def built(defs: dg.Definitions, instance: dg.DagsterInstance) -> RunSummary:
    return run_features(defs, instance)


@pytest.fixture(scope="module")
def store(built: RunSummary, settings: Settings) -> FeatureStore:
    return feature_store(settings)


@pytest.fixture
def lake(settings: Settings) -> LakeResource:
    return LakeResource(url=settings.lake_dir.as_uri())


@pytest.fixture
def restore(settings: Settings, lake: LakeResource) -> Iterator[None]:
    """Put every view's real offline rows back after a test plants bad ones."""
    saved = {v.name: steps.read(lake, v) for v in VIEWS.views}
    yield
    for view in VIEWS.views:
        steps.write(lake, view, saved[view.name])


def test_materialize_writes_offline_rows_registry_and_online_store(
    built: RunSummary, settings: Settings
) -> None:
    assert built.success, built.failures
    failed = [c for c in built.checks if not c[2]]
    assert failed == []
    assert len(built.checks) == 3 * 5 + 3 * 4  # every source and view check ran
    for view in VIEWS.views:
        assert (settings.lake_dir / "features" / view.name / "data.parquet").is_file()
    assert (settings.state_dir / "feast" / "registry.db").is_file()
    assert (settings.state_dir / "feast" / "online.db").is_file()
    carriers = offline(settings, CARRIERS)
    # Rows stop the day after the newest flight (Feb 28): 1 March, 00:00 New York time.
    assert carriers["event_timestamp"].max() == pd.Timestamp("2013-03-01 05:00", tz="UTC")
    assert carriers["event_timestamp"].min() == pd.Timestamp("2013-01-02 05:00", tz="UTC")
    assert list(carriers.columns) == list(CARRIERS.columns)


def test_online_reads_are_the_newest_offline_rows(store: FeatureStore, settings: Settings) -> None:
    rows = [
        {"carrier": "UA", "origin": "EWR", "dest": "ORD"},
        {"carrier": "ZZ", "origin": "EWR", "dest": "NOWHERE"},
    ]
    got = online_features(store, rows)
    carrier = newest(offline(settings, CARRIERS), CARRIERS, carrier="UA")
    route = newest(offline(settings, ROUTES), ROUTES, origin="EWR", dest="ORD")
    weather = newest(offline(settings, WEATHER), WEATHER, origin="EWR")
    for view, row in ((CARRIERS, carrier), (ROUTES, route), (WEATHER, weather)):
        for feature in view.feature_names:
            assert got[feature][0] == pytest.approx(row[feature], rel=1e-12), feature
    assert got["carrier_flights_28d"][0] == int(carrier["carrier_flights_28d"]) > 1000
    # An unknown carrier and route have no features online; the airport's weather is known.
    assert got["carrier_late_rate_28d"][1] is None and got["route_flights_28d"][1] is None
    assert got["weather_temp"][1] == pytest.approx(weather["weather_temp"])


def test_historical_features_never_use_a_row_stamped_after_the_prediction(
    store: FeatureStore,
    settings: Settings,
    lake: LakeResource,
    restore: None,
) -> None:
    planted_at = pd.Timestamp("2013-02-10 12:00", tz="UTC")
    real = offline(settings, CARRIERS)
    plant = real[real["carrier"] == "UA"].iloc[[0]].copy()
    plant["event_timestamp"] = planted_at
    plant["carrier_flights_28d"] = 99_999
    plant["carrier_late_rate_28d"] = 0.999
    rows = pd.concat([real, plant], ignore_index=True)
    steps.write(lake, CARRIERS, pa.Table.from_pandas(rows, preserve_index=False))
    entity = pd.DataFrame(
        {
            "carrier": ["UA", "UA", "AA"],
            "origin": ["EWR", "EWR", "JFK"],
            "dest": ["ORD", "ORD", "LAX"],
            # Predictions for flights at 13:59 and 14:01 UTC: one before the plant's stamp
            # (12:00 + 2 h is 14:00), one after.
            "event_timestamp": [
                planted_at - timedelta(minutes=1),
                planted_at + timedelta(minutes=1),
                planted_at + timedelta(minutes=1),
            ],
        }
    )
    got = historical_features(settings, entity, store=store)
    before, after, other = got.to_dict("records")
    # Before the plant: the real row of 10 Feb (stamped 05:00 UTC), never the plant.
    day = real[
        (real["carrier"] == "UA")
        & (real["event_timestamp"] == pd.Timestamp("2013-02-10 05:00", tz="UTC"))
    ]
    assert before["carrier_flights_28d"] == day["carrier_flights_28d"].item() != 99_999
    assert before["carrier_late_rate_28d"] == pytest.approx(day["carrier_late_rate_28d"].item())
    # After it, the same carrier gets the planted row; another carrier is unaffected.
    assert after["carrier_flights_28d"] == 99_999
    assert after["carrier_late_rate_28d"] == pytest.approx(0.999)
    assert other["carrier_flights_28d"] != 99_999
    assert list(got.columns) == [*entity.columns, *VIEWS.feature_names]


def test_historical_features_match_an_independent_as_of_lookup(
    store: FeatureStore, settings: Settings
) -> None:
    routes = offline(settings, ROUTES)
    stamps = pd.to_datetime(
        [
            "2013-01-05 11:00",
            "2013-01-20 23:30",
            "2013-02-14 05:00",
            "2013-02-28 20:00",
            "2013-01-01 10:00",
        ],
        utc=True,
    )
    entity = pd.DataFrame(
        {"carrier": "DL", "origin": "JFK", "dest": "ATL", "event_timestamp": stamps},
        index=pd.Index([10, 11, 12, 13, 14]),
    )
    got = historical_features(None, entity, refs=list(ROUTES.refs), store=store)
    assert list(got.index) == [10, 11, 12, 13, 14]
    route = routes[(routes["origin"] == "JFK") & (routes["dest"] == "ATL")]
    ttl = timedelta(hours=ROUTES.ttl_hours)
    for ts, flights in zip(stamps, got["route_flights_28d"], strict=True):
        window = (route["event_timestamp"] <= ts) & (route["event_timestamp"] >= ts - ttl)
        known = pd.DataFrame(route[window]).sort_values(by="event_timestamp")
        want = known["route_flights_28d"].iloc[-1] if len(known) else None
        assert (pd.isna(flights) and want is None) or flights == want, ts
    # 1 January: no row yet (the first is stamped 2 January), so null, never a later row.
    assert pd.isna(got.loc[14, "route_flights_28d"])


def test_historical_features_refuse_an_entity_frame_without_keys_or_utc(
    settings: Settings, store
) -> None:
    naive = pd.DataFrame(
        {
            "carrier": ["UA"],
            "origin": ["EWR"],
            "dest": ["ORD"],
            "event_timestamp": [datetime(2013, 2, 1)],
        }
    )
    with pytest.raises(ValueError, match="tz-aware UTC"):
        historical_features(settings, naive, store=store)
    with pytest.raises(ValueError, match="lacks dest"):
        historical_features(
            settings,
            naive.drop(columns="dest").assign(event_timestamp=datetime(2013, 2, 1, tzinfo=UTC)),
            store=store,
        )
    aware = naive.assign(event_timestamp=datetime(2013, 2, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="give the profile's settings or an open store"):
        historical_features(None, aware)


def _failed(summary: RunSummary) -> dict[str, str]:
    return {f"{a}:{c}": text for a, c, ok, text in summary.checks if not ok}


def test_a_null_rate_breach_stops_materialization(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    store: FeatureStore,
    settings: Settings,
    lake: LakeResource,
    restore: None,
) -> None:
    rows = offline(settings, ROUTES)
    before = online_features(store, [{"origin": "JFK", "dest": "ATL"}], ROUTES.refs)
    rows.loc[rows.index % 10 == 0, "route_late_rate_28d"] = None
    rows.loc[rows.index % 10 == 0, "event_timestamp"] += timedelta(
        seconds=1
    )  # newer, were it published
    steps.write(lake, ROUTES, pa.Table.from_pandas(rows, preserve_index=False))
    summary = run_features(defs, instance, "route_stats")
    assert not summary.success
    failed = _failed(summary)
    assert list(failed) == ["features/route_stats:null_rates"]
    assert "route_late_rate_28d 10.0" in failed["features/route_stats:null_rates"]
    assert "> 0%" in failed["features/route_stats:null_rates"]
    assert "nothing was applied or materialized" in "\n".join(summary.failures)
    assert online_features(store, [{"origin": "JFK", "dest": "ATL"}], ROUTES.refs) == before


def test_an_out_of_range_value_fails_value_ranges(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    lake: LakeResource,
    restore: None,
) -> None:
    rows = offline(settings, CARRIERS)
    rows.loc[5, "carrier_late_rate_28d"] = 1.5
    steps.write(lake, CARRIERS, pa.Table.from_pandas(rows, preserve_index=False))
    summary = run_features(defs, instance, "carrier_stats", checks_only=True)
    failed = _failed(summary)
    assert list(failed) == ["features/carrier_stats:value_ranges"]
    assert failed["features/carrier_stats:value_ranges"] == (
        "carrier_late_rate_28d: 1 value(s) outside 0..1 (min 1.5, max 1.5)"
    )


def test_a_bad_value_computed_from_silver_is_never_written_offline(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    settings: Settings,
    lake: LakeResource,
) -> None:
    """Review M2: a wind speed Silver accepts (≤ 220 mph) but the view does not (≤ 100) stops
    ``features/origin_weather_source`` before the write, so nothing downstream can read it."""
    before = steps.read(lake, WEATHER)
    hour = {"t": "2013-01-20 12:00:00"}
    where = "origin = 'JFK' AND time_hour = toDateTime({t:String}, 'UTC')"
    chdb = ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}")

    def set_wind(value: float) -> None:
        with chdb.session() as client:
            client.command(
                f"ALTER TABLE silver.weather UPDATE wind_speed = {{v:Float64}} WHERE {where}",
                parameters={**hour, "v": value},
                settings={"mutations_sync": 2},
            )

    with chdb.session() as client:
        query = f"SELECT wind_speed FROM silver.weather WHERE {where}"
        ((saved,),) = client.query(query, parameters=hour).result_rows
    set_wind(150.0)
    try:
        planted = where.replace("{t:String}", repr(hour["t"]))
        assert silver_query(settings, f"SELECT wind_speed FROM silver.weather WHERE {planted}") == [
            (150.0,)
        ]
        summary = run_features(defs, instance, "origin_weather_source")
    finally:
        set_wind(saved)
    assert not summary.success
    failed = _failed(summary)
    assert list(failed) == ["features/origin_weather_source:value_ranges"]
    assert (
        "weather_wind_speed: 1 value(s) outside 0..100 (min 150, max 150)"
        in (failed["features/origin_weather_source:value_ranges"])
    )
    assert "nothing was written; the lake keeps the previous rows" in "\n".join(summary.failures)
    assert steps.read(lake, WEATHER).equals(before)


def test_an_online_value_that_differs_from_offline_fails_consistency(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    store: FeatureStore,
    settings: Settings,
) -> None:
    jfk = newest(offline(settings, WEATHER), WEATHER, origin="JFK")
    tampered = pd.DataFrame([jfk]).assign(weather_temp=-39.0)
    store.write_to_online_store("origin_weather", tampered)
    try:
        summary = run_features(defs, instance, "origin_weather", checks_only=True)
        failed = _failed(summary)
        assert list(failed) == ["features/origin_weather:online_consistency"]
        assert (
            f"JFK weather_temp: online -39.0, offline {jfk['weather_temp']}"
            in failed["features/origin_weather:online_consistency"]
        )
    finally:
        store.write_to_online_store("origin_weather", pd.DataFrame([jfk]))
    assert online_features(store, [{"origin": "JFK"}], WEATHER.refs)["weather_temp"] == [
        jfk["weather_temp"]
    ]
