"""`onering airflow up|trigger|status|down`: a real local Airflow 3 runs the exported DAGs.

Starting it runs nothing by itself; one partition key triggered on the Bronze DAG then
flows, through Airflow's partitioned asset schedules, to the Silver and Gold DAGs; every
task materializes real assets on the embedded stores.
"""

import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from airflow_bridge.local import (
    LATENCY,
    LocalAirflow,
    check_trigger,
    downstream_dags,
    review,
    started_by_start,
)
from airflow_bridge.processes import free_port
from onering_assets.runner import RANGE_END, RANGE_START
from onering_assets.settings import PLATFORM_DIR, Settings
from tests.conftest import gold_rows

DAGS = PLATFORM_DIR / "orchestration" / "airflow" / "dags"


def onering(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def dagster_runs(state: Path) -> dict[str, dict[str, str]]:
    """Run id -> tags of every Dagster run in the state folder."""
    with dg.DagsterInstance.from_config(str(state / "dagster")) as instance:
        return {r.run_id: dict(r.tags) for r in instance.get_runs()}


def lake_files(state: Path) -> dict[str, int]:
    """Every lake file and its modification time (ns)."""
    lake = state / "lake"
    return {str(p.relative_to(lake)): p.stat().st_mtime_ns for p in lake.rglob("*") if p.is_file()}


def airflow_runs(local: LocalAirflow) -> list[dict]:
    return local.client().get("/dags/~/dagRuns", limit=100)["dag_runs"]


def wait_for_scheduler_loops(local: LocalAirflow, seconds: float) -> None:
    """Until the scheduler has heartbeat ``seconds`` after now (several scheduling loops)."""
    after = time.time() + seconds
    deadline = time.monotonic() + seconds + 120
    while time.monotonic() < deadline:
        beat = local.client().get("/monitor/health")["scheduler"]["latest_scheduler_heartbeat"]
        if beat and datetime.fromisoformat(beat).timestamp() >= after:
            return
        time.sleep(1)
    raise AssertionError(f"the scheduler did not heartbeat {seconds:g} s after up returned")


@pytest.mark.slow
def test_up_runs_nothing_and_a_triggered_month_flows_from_bronze_to_gold(
    tmp_path: Path, make_source
) -> None:
    state = tmp_path / "state"
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "COLUMNS": "200",
    }
    medallion = "group:bronze or group:silver or group:gold"
    january = onering(env, "materialize", "--select", medallion, "--partition", "2013-01")
    assert january.returncode == 0, january.stdout + january.stderr
    runs_before, lake_before = dagster_runs(state), lake_files(state)
    assert lake_before

    port = free_port()
    local = LocalAirflow(home=state / "airflow", dags_folder=DAGS, port=port)
    up = onering(env, "airflow", "up", "--port", str(port))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        # Long enough for the old behaviour (every DAG unpaused, Bronze's @monthly cron
        # firing for this machine's month) to have queued a run and started its tasks.
        wait_for_scheduler_loops(local, 20)
        assert airflow_runs(local) == []
        assert dagster_runs(state) == runs_before
        assert lake_files(state) == lake_before
        unpaused = next(line for line in up.stdout.splitlines() if "unpaused " in line)
        for dag in ("onering_bronze", "onering_silver", "onering_gold"):
            assert dag in unpaused, up.stdout
        assert "nothing ran because Airflow started" in up.stdout

        run = onering(
            env, "airflow", "trigger", "onering_bronze", "--partition", "2013-02", "--wait"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        for dag in ("onering_bronze", "onering_silver", "onering_gold"):
            assert f"{dag}: success" in run.stdout
        assert "onering_gold.gold__carrier_monthly_performance: success" in run.stdout
        # Only the test's run and the runs its partition key triggered downstream.
        runs = {(r["dag_id"], r["run_type"], r["partition_key"]) for r in airflow_runs(local)}
        assert runs == {
            ("onering_bronze", "manual", "2013-02"),
            ("onering_silver", "asset_triggered", "2013-02"),
            ("onering_gold", "asset_triggered", "2013-02"),
        }

        settings = Settings(profile="local", state_dir=state)
        gold = gold_rows(settings, "carrier_monthly_performance")
        assert {r[2].strftime("%Y-%m") for r in gold} == {"2013-01", "2013-02"}
        silver = [
            t for t in dagster_runs(state).values() if t.get("airflow/dag_id") == "onering_silver"
        ]
        # Partitioned Silver assets ran for the key; the unpartitioned ones run whole.
        assert {(t.get(RANGE_START), t.get(RANGE_END)) for t in silver} == {
            ("2013-02", "2013-02"),
            (None, None),
        }

        status = onering(env, "airflow", "status")
        assert status.returncode == 0, status.stderr
        assert "onering_gold" in status.stdout and "2013-02" in status.stdout

        refused = onering(env, "airflow", "trigger", "onering_bronze", "--partition", "2014-05")
        assert refused.returncode == 1
        assert "not one of onering_bronze's (2013-01..2013-12)" in refused.stderr
    finally:
        down = onering(env, "airflow", "down")
        assert down.returncode == 0, down.stderr


def test_trigger_and_up_refuse_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "ONERING_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    not_running = onering(env, "airflow", "trigger", "onering_bronze")
    assert not_running.returncode == 1
    assert "Airflow is not running" in not_running.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = onering(env, "airflow", "up", "--port", str(port))
    assert refused.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in refused.stderr
    assert onering(env, "airflow", "status").returncode == 1


def test_trigger_checks_dag_and_partition_before_running() -> None:
    from airflow_bridge.errors import BridgeError

    check_trigger(DAGS, "onering_silver", "2013-07")
    with pytest.raises(BridgeError, match=r"no exported DAG 'nope'.*onering_bronze"):
        check_trigger(DAGS, "nope", None)
    with pytest.raises(BridgeError, match="2013-13"):
        check_trigger(DAGS, "onering_bronze", "2013-13")
    assert downstream_dags(DAGS, "onering_bronze") == ["onering_silver", "onering_gold"]
    assert downstream_dags(DAGS, "onering_gold") == []


def test_trigger_refuses_a_selection_that_picks_none_of_the_dags_assets() -> None:
    """Exit 3 (nothing selected) in one line, before needing Airflow, naming what exists."""
    env = {**os.environ, "COLUMNS": "400"}
    elsewhere = onering(env, "airflow", "trigger", "onering_gold", "-s", 'key:"silver/flights"')
    assert elsewhere.returncode == 3, elsewhere.stderr
    assert len(elsewhere.stderr.strip().splitlines()) == 1
    assert (
        "picks none of onering_gold's assets (gold/airport_daily_weather, "
        "gold/carrier_monthly_performance, gold/route_performance); it picks assets of "
        "onering_silver (silver/flights): trigger that DAG instead." in elsewhere.stderr
    )
    nowhere = onering(env, "airflow", "trigger", "onering_bronze", "--select", "tag:nope")
    assert nowhere.returncode == 3, nowhere.stderr
    assert len(nowhere.stderr.strip().splitlines()) == 1
    assert "picks none of onering_bronze's assets (bronze/airlines," in nowhere.stderr
    assert (
        "(DAGs: onering_airbyte, onering_bronze, onering_drift, onering_features, onering_gold, "
        "onering_ml, onering_silver, onering_stream;" in nowhere.stderr
    )


NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def dag(dag_id: str, paused: bool, run_after: str | None) -> dict:
    return {
        "dag_id": dag_id,
        "is_paused": paused,
        "next_dagrun_run_after": run_after,
        "timetable_summary": "@hourly",
    }


def test_up_unpauses_only_new_dags_whose_schedule_has_no_run_due() -> None:
    dags = [
        dag("assets", True, None),  # asset-triggered: runs on triggered runs' events
        dag("ended", True, None),  # a partition window with no run left
        dag("later", True, "2026-12-01T00:00:00Z"),  # first run in the future
        dag("due", True, "2026-11-30T12:00:00Z"),  # unpausing it runs that at once
        dag("mine", True, None),  # paused by someone after an earlier `up`: left alone
    ]
    unpause, kept = review(dags, {"mine"}, NOW)
    assert unpause == ["assets", "ended", "later"]
    assert list(kept) == ["due"]
    assert "run due since 2026-11-30T12:00:00Z" in kept["due"]

    runs = [
        {
            "dag_id": "a",
            "dag_run_id": "manual__x",
            "run_type": "manual",
            "partition_key": "2013-02",
        },
        {
            "dag_id": "b",
            "dag_run_id": "scheduled__y",
            "run_type": "scheduled",
            "partition_key": "2013-12",
        },
        {
            "dag_id": "c",
            "dag_run_id": "asset_triggered__z",
            "run_type": "asset_triggered",
            "partition_key": None,
        },
    ]
    started = started_by_start(
        [
            dag("b", False, "2026-11-30T11:00:00Z"),
            dag("d", False, "2026-11-30T11:00:00Z"),
            dag("e", True, "2026-11-30T11:00:00Z"),
        ],
        runs,
        NOW,
    )
    assert started == [
        "b run scheduled__y (scheduled, partition 2013-12)",
        "c run asset_triggered__z (asset_triggered)",
        "d: its scheduled run due since 2026-11-30T11:00:00Z",
    ]
    assert started_by_start([dag("a", False, None)], runs[:1], NOW) == []


@pytest.mark.slow
def test_up_keeps_a_dag_with_a_run_due_paused_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unpartitioned @hourly DAG has a run due at once (catchup=False runs the latest
    tick): the real Airflow reports it for a DAG created paused, and `up` leaves it paused."""
    from airflow_bridge.config import RenderConfig
    from airflow_bridge.export import render, snapshot, write
    from onering_assets.definitions import build_definitions

    monkeypatch.setenv("ONERING_STATE_DIR", str(tmp_path / "state"))
    config = RenderConfig(
        grouping="selection",
        dags={"hourly": 'key:"bronze/airlines"', "after": 'key:"silver/airlines"'},
        schedules={"hourly": "@hourly"},
    )
    defs = build_definitions(Settings(profile="local", state_dir=tmp_path / "state"))
    write(tmp_path / "dags", render(snapshot(defs, config), config))
    local = LocalAirflow(home=tmp_path / "airflow", dags_folder=tmp_path / "dags", port=free_port())
    said: list[str] = []
    try:
        state = local.up(say=said.append)
        assert state["started"] == []
        assert "unpaused after: no schedule of theirs has a run due" in said
        assert any(line.startswith("kept hourly paused: its schedule") for line in said), said
        client = local.client()
        assert client.paused(["hourly", "after"]) == ["hourly"]
        wait_for_scheduler_loops(local, 10)
        assert airflow_runs(local) == []
        # A second `up` leaves the DAGs as they are: pausing them is now the user's call.
        said.clear()
        assert local.up(say=said.append)["started"] == []
        assert not any("unpaused" in line or "kept" in line for line in said), said
    finally:
        local.down(say=said.append)


def test_latency_settings_reach_airflow_and_the_environment_wins(tmp_path: Path) -> None:
    """`up` runs Airflow with LATENCY's settings (bench/airflow_month.py measured them); a
    value already in the environment is kept."""
    local = LocalAirflow(home=tmp_path / "airflow", dags_folder=tmp_path / "dags", port=free_port())
    base = {"PATH": os.environ["PATH"], "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "2.5"}

    def effective(section: str, key: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "config", "get-value", section, key],
            env=local.env(base),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert LATENCY["AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL"] == "1"
    assert effective("workers", "min_heartbeat_interval") == "1"
    assert effective("scheduler", "scheduler_idle_sleep_time") == "2.5"
    assert local.env({})["AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME"] == "0.25"
