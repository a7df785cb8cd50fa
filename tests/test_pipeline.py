"""Bronze -> Silver -> Gold on the real embedded stores (chDB, PostgreSQL 18, Parquet lake)."""

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.conftest import gold_rows, run, settings_for, silver_query, silver_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, make_source, instance: dg.DagsterInstance):
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    summary = run(settings, instance=instance)
    assert summary.success, summary.failures
    return settings, summary


def expected_carrier_monthly(flights: pd.DataFrame) -> pd.DataFrame:
    """The mart's definition, computed independently with pandas from the landed CSV."""
    f = flights.replace({"": None, "NA": None})
    for column in ("dep_delay", "arr_delay"):
        f[column] = pd.to_numeric(f[column])
    f["month_start"] = pd.to_datetime(f["year"] + "-" + f["month"].str.zfill(2) + "-01").dt.date
    grouped = f.groupby(["carrier", "month_start"])
    return pd.DataFrame(
        {
            "flights": grouped.size(),
            "cancelled": grouped["dep_time"].apply(lambda s: s.isna().sum()),
            "avg_dep_delay": grouped["dep_delay"].mean(),
            "avg_arr_delay": grouped["arr_delay"].mean(),
            "pct_arr_delayed_15": grouped["arr_delay"].apply(
                lambda s: 100 * (s > 15).sum() / s.notna().sum()
            ),
        }
    )


def test_every_layer_is_built_with_all_checks_passing(built) -> None:
    settings, summary = built
    assert summary.rows["bronze/flights"] == 51955
    assert summary.rows["silver/flights"] == 51955
    assert summary.rows["silver/weather"] == 4236
    assert not [c for c in summary.checks if not c[2]]
    assert len(summary.checks) >= 40
    lake = Path(settings.lake_dir) / "bronze" / "flights"
    assert sorted(p.name for p in lake.iterdir()) == ["month=2013-01", "month=2013-02"]


def test_carrier_monthly_performance_matches_its_definition(built, flights_jan_feb) -> None:
    settings, _ = built
    expected = expected_carrier_monthly(flights_jan_feb)
    rows = gold_rows(settings, "carrier_monthly_performance")
    assert len(rows) == len(expected)
    names = dict(silver_query(settings, "SELECT carrier, name FROM silver.airlines"))
    for carrier, name, month, flights, cancelled, dep, arr, pct in rows:
        want = expected.loc[(carrier, month)]
        assert name == names[carrier]
        assert (flights, cancelled) == (want["flights"], want["cancelled"])
        assert dep == pytest.approx(want["avg_dep_delay"])
        assert arr == pytest.approx(want["avg_arr_delay"])
        assert pct == pytest.approx(want["pct_arr_delayed_15"])


def test_route_and_airport_marts_reconcile_with_silver(built) -> None:
    settings, _ = built
    routes = gold_rows(settings, "route_performance")
    daily = gold_rows(settings, "airport_daily_weather")
    assert sum(r[2] for r in routes) == 51955
    assert sum(r[2] for r in daily) == 51955
    assert {r[0] for r in daily} == {"EWR", "JFK", "LGA"}
    assert len(daily) == 3 * 59  # three airports, every day of January and February


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
    keys = set(defs.resolve_asset_graph().materializable_asset_keys)
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
