"""`onering airflow up|trigger|status|down`: a real local Airflow 3 runs the exported DAGs.

One partition key triggered on the Bronze DAG flows, through Airflow's partitioned asset
schedules, to the Silver and Gold DAGs; every task materializes real assets on the
embedded stores.
"""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from airflow_bridge.local import check_trigger, downstream_dags
from airflow_bridge.processes import free_port
from onering_assets.runner import RANGE_END, RANGE_START
from onering_assets.settings import PLATFORM_DIR, Settings
from tests.conftest import gold_rows

DAGS = PLATFORM_DIR / "orchestration" / "airflow" / "dags"


def onering(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "airflow", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def airflow_up(tmp_path: Path, make_source) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(tmp_path / "state"),
        "ONERING_SOURCE_DIR": str(make_source()),
        "COLUMNS": "200",
    }
    up = onering(env, "up", "--port", str(free_port()))
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield env
    finally:
        down = onering(env, "down")
        assert down.returncode == 0, down.stderr


@pytest.mark.slow
def test_partition_flows_from_bronze_to_gold(airflow_up: dict[str, str], tmp_path: Path) -> None:
    env = airflow_up
    run = onering(env, "trigger", "onering_bronze", "--partition", "2013-02", "--wait")
    assert run.returncode == 0, run.stdout + run.stderr
    for dag in ("onering_bronze", "onering_silver", "onering_gold"):
        assert f"{dag}: success" in run.stdout
    assert "onering_gold.gold__carrier_monthly_performance: success" in run.stdout

    settings = Settings(profile="local", state_dir=tmp_path / "state")
    months = {r[2].strftime("%Y-%m") for r in gold_rows(settings, "carrier_monthly_performance")}
    assert months == {"2013-02"}
    with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
        runs = instance.get_runs(dg.RunsFilter(tags={"airflow/dag_id": "onering_silver"}))
        ranges = {(r.tags.get(RANGE_START), r.tags.get(RANGE_END)) for r in runs}
        # Partitioned Silver assets ran for the key; the unpartitioned ones run whole.
        assert ranges == {("2013-02", "2013-02"), (None, None)}

    status = onering(env, "status")
    assert status.returncode == 0, status.stderr
    assert "onering_gold" in status.stdout and "2013-02" in status.stdout

    refused = onering(env, "trigger", "onering_bronze", "--partition", "2014-05")
    assert refused.returncode == 1
    assert "not one of onering_bronze's (2013-01..2013-12)" in refused.stderr


def test_trigger_and_up_refuse_clearly(tmp_path: Path) -> None:
    env = {**os.environ, "ONERING_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "200"}
    not_running = onering(env, "trigger", "onering_bronze")
    assert not_running.returncode == 1
    assert "Airflow is not running" in not_running.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = onering(env, "up", "--port", str(port))
    assert refused.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in refused.stderr
    assert onering(env, "status").returncode == 1


def test_trigger_checks_dag_and_partition_before_running() -> None:
    from airflow_bridge.errors import BridgeError

    check_trigger(DAGS, "onering_silver", "2013-07")
    with pytest.raises(BridgeError, match=r"no exported DAG 'nope'.*onering_bronze"):
        check_trigger(DAGS, "nope", None)
    with pytest.raises(BridgeError, match="2013-13"):
        check_trigger(DAGS, "onering_bronze", "2013-13")
    assert downstream_dags(DAGS, "onering_bronze") == ["onering_silver", "onering_gold"]
    assert downstream_dags(DAGS, "onering_gold") == []
