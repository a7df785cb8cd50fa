"""Feature declarations, specs, configuration and the point-in-time join, without a state."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest

from onering_assets import features
from onering_assets.errors import ConfigError
from onering_assets.features import checks
from onering_assets.features.pit import ViewRows, point_in_time_join
from onering_assets.features.views import SQL_DIR, VIEWS_FILE, load_views, parse_views
from onering_assets.resources.feast import PROFILE_FILES, FeastResource
from tests.features import base

VIEWS = load_views()


def test_views_yml_declares_three_views_with_unique_features() -> None:
    assert [v.name for v in VIEWS.views] == ["carrier_stats", "route_stats", "origin_weather"]
    assert VIEWS.view("route_stats").join_keys == ("origin", "dest")
    assert "carrier_stats:carrier_late_rate_28d" in VIEWS.refs
    assert len(set(VIEWS.feature_names)) == len(VIEWS.feature_names) == 12


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("dtype: Float64", "dtype: Decimal", 1), "dtype 'Decimal' is not one of"),
        (("sql: route_stats.sql", "sql: missing.sql", 1), "missing.sql does not exist"),
        (("entities: [carrier]", "entities: [airline]", 1), "['airline'] are not declared"),
        (("range: [0, 1]", "range: [1, 0]", 1), "range [1, 0] is empty"),
        (("name: route_distance", "name: carrier_flights_28d", 1), "must be unique across views"),
    ],
)
def test_a_malformed_views_file_is_refused_clearly(
    tmp_path: Path, change: tuple[str, str, int], message: str
) -> None:
    old, new, count = change
    path = tmp_path / "views.yml"
    path.write_text(VIEWS_FILE.read_text().replace(old, new, count))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_views(path, SQL_DIR)


def test_definitions_load_imports_no_feast(tmp_path: Path) -> None:
    code = (
        "import sys, dagster as dg; from pathlib import Path;"
        "from onering_assets import features;"
        "from onering_assets.definitions import build_definitions;"
        "from onering_assets.resources.feast import feast_resource;"
        "from onering_assets.settings import Settings;"
        f"s = Settings(profile='local', state_dir=Path({str(tmp_path)!r}));"
        "d = build_definitions(s, resources={'feast': feast_resource(s)});"
        "d.resolve_asset_graph();"
        "print(','.join(m for m in ('feast', 'dask', 'pandas', 'redis', 'sqlalchemy')"
        " if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_each_view_is_a_source_asset_and_a_view_asset_with_checks() -> None:
    defs = dg.Definitions.merge(
        features.defs(), dg.Definitions(resources={"clickhouse": {}, "lake": {}, "feast": {}})
    )
    graph = defs.resolve_asset_graph()
    source = graph.get(dg.AssetKey(["features", "route_stats_source"]))
    view = graph.get(dg.AssetKey(["features", "route_stats"]))
    assert source.parent_keys == {dg.AssetKey(["silver", "flights"])}
    assert view.parent_keys == {source.key}
    assert graph.get(dg.AssetKey(["features", "origin_weather_source"])).parent_keys == {
        dg.AssetKey(["silver", "weather"])
    }
    specs = {s.key: s for s in defs.resolve_all_asset_specs()}
    assert specs[view.key].group_name == "features" and specs[view.key].owners == ["team:ml"]
    found = {k.name for k in graph.asset_check_keys if k.asset_key == view.key}
    assert found == {"null_rates", "value_ranges", "freshness", "online_consistency"}
    found = {k.name for k in graph.asset_check_keys if k.asset_key == source.key}
    assert found == {"not_empty", "key_unique", "null_rates", "value_ranges", "not_after_inputs"}
    freshness = graph.get_check_spec(dg.AssetCheckKey(view.key, "freshness"))
    assert not freshness.blocking and "not the wall clock" in (freshness.description or "")
    for name in ("null_rates", "value_ranges", "online_consistency"):
        assert graph.get_check_spec(dg.AssetCheckKey(view.key, name)).blocking


def test_the_compose_profile_names_its_unset_variable(tmp_path: Path) -> None:
    feast = FeastResource(config_file=str(PROFILE_FILES["compose"]), repo_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="needs the variable ONERING_FEAST_REGISTRY_URL"):
        feast.raw_config(env={})
    filled = FeastResource(
        config_file=str(PROFILE_FILES["compose"]),
        repo_dir=str(tmp_path),
        registry_url="postgresql+psycopg://u:p@db:5432/onering",
        redis_connection="redis:6379,password=secret",
    ).raw_config(env={})
    assert filled["registry"]["path"] == "postgresql+psycopg://u:p@db:5432/onering"
    assert filled["online_store"] == {
        "type": "redis",
        "connection_string": "redis:6379,password=secret",
    }


def test_feasts_own_loader_fills_the_same_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.repo_config import load_repo_config

    monkeypatch.setenv("ONERING_FEAST_DIR", str(tmp_path))
    config = load_repo_config(tmp_path, PROFILE_FILES["local"])
    assert getattr(config.registry, "path", None) == f"{tmp_path}/registry.db"
    assert getattr(config.online_store, "path", None) == f"{tmp_path}/online.db"


def _rows(*entries: tuple[str, str, float, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "carrier": c,
                "ts": pd.Timestamp(t, tz="UTC"),
                "rate": r,
                "created": pd.Timestamp(k, tz="UTC"),
            }
            for c, t, r, k in entries
        ]
    )


def _join(entity: pd.DataFrame, rows: pd.DataFrame, ttl_hours: float | None = 72) -> pd.DataFrame:
    view = ViewRows(
        rows=rows,
        keys=["carrier"],
        timestamp="ts",
        created="created",
        features=["rate"],
        ttl=timedelta(hours=ttl_hours) if ttl_hours else None,
        output={"rate": "rate"},
    )
    return point_in_time_join(entity, "event_timestamp", [view])


def test_the_join_takes_the_newest_row_at_or_before_each_entity_row() -> None:
    rows = _rows(
        ("UA", "2013-02-10 05:00", 0.20, "2026-01-01"),
        ("UA", "2013-02-10 12:00", 9.99, "2026-01-01"),  # planted: known only at noon
        ("UA", "2013-02-11 05:00", 0.30, "2026-01-01"),
        ("UA", "2013-02-11 05:00", 0.31, "2026-01-02"),  # same stamp, created later: wins
    )
    entity = pd.DataFrame(
        {
            "carrier": ["UA", "UA", "UA", "UA", "AA", None],
            "event_timestamp": pd.to_datetime(
                [
                    "2013-02-10 11:59",
                    "2013-02-10 12:00",
                    "2013-02-11 06:00",
                    "2013-02-01 00:00",
                    "2013-02-10 13:00",
                    "2013-02-10 13:00",
                ],
                utc=True,
            ),
        },
        index=pd.Index([5, 4, 3, 2, 1, 0]),
    )
    got = _join(entity, rows)
    assert list(got.index) == [5, 4, 3, 2, 1, 0]  # every row kept, in order
    rate = got["rate"].tolist()
    assert rate[:3] == [0.20, 9.99, 0.31]
    assert all(pd.isna(r) for r in rate[3:])  # before any row; unknown carrier; no key


def test_the_join_gives_null_past_the_ttl_and_keeps_the_row() -> None:
    rows = _rows(("UA", "2013-02-01 05:00", 0.2, "2026-01-01"))
    entity = pd.DataFrame(
        {
            "carrier": ["UA", "UA"],
            "event_timestamp": pd.to_datetime(["2013-02-04 05:00", "2013-02-04 05:01"], utc=True),
        }
    )
    assert _join(entity, rows)["rate"].tolist()[0] == 0.2  # exactly 72 h: still valid
    assert pd.isna(_join(entity, rows)["rate"].tolist()[1])
    assert _join(entity, rows, ttl_hours=None)["rate"].tolist() == [0.2, 0.2]


def test_the_join_refuses_an_entity_frame_without_its_keys() -> None:
    entity = pd.DataFrame(
        {"origin": ["EWR"], "event_timestamp": [pd.Timestamp("2013-02-01", tz="UTC")]}
    )
    with pytest.raises(KeyError, match="needs the columns carrier"):
        _join(entity, _rows(("UA", "2013-02-01", 0.1, "2026-01-01")))


def _carrier_rows(stamps: list[str]) -> pa.Table:
    frame = pd.DataFrame(
        {
            "carrier": ["UA"] * len(stamps),
            "event_timestamp": pd.to_datetime(stamps, utc=True),
            "carrier_flights_28d": 10,
            "carrier_late_rate_28d": 0.2,
            "carrier_mean_arr_delay_28d": 1.0,
        }
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


def test_source_checks_catch_a_row_from_the_future_and_a_duplicate_key() -> None:
    view = VIEWS.view("carrier_stats")
    known = datetime(2013, 3, 1, 5, tzinfo=UTC)
    rows = _carrier_rows(
        ["2013-02-28 05:00", "2013-03-01 05:00", "2013-03-02 05:00", "2013-03-02 05:00"]
    )
    late = checks.not_after_inputs(rows, known)
    assert not late.passed and late.failing == 2
    assert late.summary.startswith(
        "2 rows are stamped after the newest input data (2013-03-01T05:00:00+00:00)"
    )
    dupes = checks.key_unique(rows, view)
    assert (
        not dupes.passed and "1 (carrier, event_timestamp) appear more than once" in dupes.summary
    )
    assert checks.not_after_inputs(rows.slice(0, 2), known).passed


def test_freshness_is_measured_against_the_newest_silver_data() -> None:
    view = VIEWS.view("carrier_stats")  # 48 h allowed
    rows = _carrier_rows(["2013-02-25 05:00"])
    stale = checks.freshness(rows, view, datetime(2013, 3, 1, 5, tzinfo=UTC))
    assert not stale.passed
    assert "is 4 days, 0:00:00 behind the newest Silver data" in stale.summary
    assert "rebuild features/carrier_stats_source" in stale.summary
    assert checks.freshness(rows, view, datetime(2013, 2, 27, 5, tzinfo=UTC)).passed


def test_checks_alone_on_a_fresh_state_report_nothing_published_and_create_nothing(
    tmp_path: Path,
) -> None:
    from onering_assets.definitions import build_definitions
    from onering_assets.resources.feast import feast_resource
    from onering_assets.runner import execute
    from onering_assets.settings import Settings

    settings = Settings(profile="local", state_dir=tmp_path / ".onering")
    defs = build_definitions(settings, resources={"feast": feast_resource(settings)})
    graph = defs.resolve_asset_graph()
    keys = {c for c in graph.asset_check_keys if c.asset_key.path[0] == "features"}
    with base.quick_instance() as instance:
        summary = execute(defs, instance, assets=set(), checks=keys, progress=False)
    assert len(summary.checks) == len(keys) == 27
    assert {text for *_, ok, text in summary.checks if not ok} == {
        f"features/{v.name} has not been materialized yet; run `onering materialize` first."
        for v in VIEWS.views
    }
    created = (
        {p.name for p in settings.state_dir.iterdir()} if settings.state_dir.exists() else set()
    )
    assert not created & {"clickhouse", "feast", "lake"}


def test_nan_counts_as_missing_in_null_rates() -> None:
    """Review: NaN passed null_rates (not a null) and value_ranges (dropped) into the lake."""
    import datetime as dt

    import pyarrow as pa

    from onering_assets.features.checks import null_rates

    view = load_views().view("origin_weather")
    hours = [dt.datetime(2013, 1, 1, h, tzinfo=dt.UTC) for h in range(10)]
    columns: dict[str, list] = {"origin": ["JFK"] * 10, "event_timestamp": hours}
    columns |= {f.name: [1.0] * 10 for f in view.features}
    columns["weather_temp"] = [float("nan"), *[1.0] * 9]
    outcome = null_rates(pa.table(columns), view)
    assert not outcome.passed
    assert outcome.summary == "null share above the declared limit: weather_temp 10.00% > 1%"
