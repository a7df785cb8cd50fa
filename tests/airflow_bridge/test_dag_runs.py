"""DAGs run end to end with the real Airflow 3 (`dag.test()`), materializing real assets on
the embedded stores, in the in_process and subprocess modes."""

import sys
from dataclasses import replace
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from airflow_bridge.config import RenderConfig
from airflow_bridge.export import render, snapshot, write
from onering_assets.definitions import build_definitions
from onering_assets.settings import Settings
from tests.conftest import gold_rows

pytestmark = pytest.mark.slow


def export_to(folder: Path, state: Path, config: RenderConfig) -> Path:
    defs = build_definitions(Settings(profile="local", state_dir=state))
    write(folder, render(snapshot(defs, config), config))
    return folder


def test_bronze_silver_gold_dags_in_process(tmp_path: Path, make_source, run_dag) -> None:
    state = tmp_path / "state"
    dags = export_to(tmp_path / "dags", state, RenderConfig())
    env = {"ONERING_STATE_DIR": str(state), "ONERING_SOURCE_DIR": str(make_source())}
    for dag_id in ("onering_bronze", "onering_silver", "onering_gold"):
        result = run_dag(dags, dag_id, {"partition": "2013-01"}, **env)
        assert result["state"] == "success", result["log"][-3000:]
        assert set(result["tasks"].values()) == {"success"}
    settings = Settings(profile="local", state_dir=state)
    months = {r[2].strftime("%Y-%m") for r in gold_rows(settings, "carrier_monthly_performance")}
    assert months == {"2013-01"}
    with dg.DagsterInstance.from_config(str(state / "dagster")) as inst:
        runs = inst.get_runs(dg.RunsFilter(tags={"airflow/dag_id": "onering_gold"}))
        assert len(runs) == 3
        tags = runs[0].tags
        assert tags["airflow/try_number"] == "1" and tags["airflow/task_id"].startswith("gold__")


def test_subprocess_mode_runs_the_onering_cli_for_a_conf_selection(
    tmp_path: Path, make_source, run_dag
) -> None:
    state = tmp_path / "state"
    config = replace(RenderConfig(), mode="subprocess", python=sys.executable)
    dags = export_to(tmp_path / "dags", state, config)
    env = {"ONERING_STATE_DIR": str(state), "ONERING_SOURCE_DIR": str(make_source())}
    conf = {"from": "2013-01", "to": "2013-02", "select": 'key:"bronze/flights" or kind:nope'}
    result = run_dag(dags, "onering_bronze", conf, **env)
    assert result["state"] == "success", result["log"][-3000:]
    assert sorted(p.name for p in (state / "lake" / "bronze" / "flights").iterdir()) == [
        "month=2013-01",
        "month=2013-02",
    ]
    # conf `select` narrows the run: the other Bronze tasks skip, with the reason.
    assert result["tasks"].pop("bronze__flights") == "success"
    assert result["tasks"].pop("publish_lineage") == "success"  # the teardown (no catalog set)
    assert set(result["tasks"].values()) == {"skipped"}
    assert sorted(p.name for p in (state / "lake" / "bronze").iterdir()) == ["flights"]


def test_failed_blocking_check_fails_its_task_and_stops_downstream(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame, run_dag
) -> None:
    state = tmp_path / "state"
    dags = export_to(tmp_path / "dags", state, replace(RenderConfig(), grouping="one", retries=0))
    bad = flights_jan_feb.copy()
    bad.loc[bad.index % 10 == 0, "arr_delay"] = "late"
    env = {"ONERING_STATE_DIR": str(state), "ONERING_SOURCE_DIR": str(make_source(flights=bad))}
    result = run_dag(dags, "onering", {"partition": "2013-01"}, **env)
    assert result["state"] == "failed"
    tasks = result["tasks"]
    assert tasks["silver__flights"] == "failed"
    assert tasks["gold__carrier_monthly_performance"] == "upstream_failed"
    assert tasks["gold__route_performance"] == "upstream_failed"
    assert tasks["silver__weather"] == "success"
    assert "check silver/flights:reject_rate failed" in result["log"]
