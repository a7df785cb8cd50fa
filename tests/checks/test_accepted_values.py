"""A failing ``accepted_values`` check blocks Silver: the run fails, Silver keeps its version.

``silver/weather`` declares ``accepted_values: {origin: [EWR, JFK, LGA]}`` (blocking, see
``checks/specs.py``). A landed origin of ``XXX`` parses and has a key, so Silver's SQL keeps
the row; only the check stands between it and publication.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.checks import names
from onering_assets.checks.specs import silver_checks
from tests.conftest import gold_rows, run, settings_for, silver_query, silver_rows

pytestmark = pytest.mark.slow
WEATHER_KEY = "origin, time_hour"


def test_accepted_values_is_declared_blocking_on_weather() -> None:
    decls = {d.name: d for d in silver_checks(load_catalog().sql_table("silver", "weather"))}
    assert decls[names.ACCEPTED_VALUES].blocking


def test_an_unknown_origin_fails_the_run_and_silver_keeps_its_version(
    tmp_path_factory: pytest.TempPathFactory,
    make_source,
    weather_jan_feb: pd.DataFrame,
    instance: dg.DagsterInstance,
) -> None:
    settings = settings_for(tmp_path_factory.mktemp("state"), make_source())
    assert run(settings, instance=instance).success
    before_silver = silver_rows(settings, "weather", WEATHER_KEY)
    before_gold = gold_rows(settings, "airport_daily_weather")
    planted = weather_jan_feb.copy()
    february_jfk = planted.query("origin == 'JFK' and month == '2'").index[:5]
    planted.loc[february_jfk, "origin"] = "XXX"

    summary = run(settings_for(settings.state_dir, make_source(weather=planted)), instance=instance)

    assert not summary.success
    failures = {(a, c): d for a, c, ok, d in summary.checks if not ok}
    assert set(failures) == {("silver/weather", names.ACCEPTED_VALUES)}
    assert "5 rows where origin not in" in failures[("silver/weather", names.ACCEPTED_VALUES)]
    assert any("nothing was published" in f for f in summary.failures)
    assert "silver/weather" not in summary.rows
    assert "gold/airport_daily_weather" not in summary.rows  # downstream did not run
    assert silver_rows(settings, "weather", WEATHER_KEY) == before_silver
    assert silver_query(settings, "SELECT count() FROM silver.weather WHERE origin = 'XXX'") == [
        (0,)
    ]
    assert gold_rows(settings, "airport_daily_weather") == before_gold
