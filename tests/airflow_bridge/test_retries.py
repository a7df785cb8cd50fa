"""Which failed tasks Airflow retries, and what a killed task leaves behind.

Real Airflow 3 (`dag.test()` in a child process, retries as bridge.yml sets them), real
Dagster runs on the embedded stores, real locks, processes and signals.
"""

import contextlib
import fcntl
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from airflow_bridge.config import RenderConfig
from airflow_bridge.export import render, snapshot, write
from onering_assets.catalog import load_catalog
from onering_assets.checks.specs import silver_checks
from onering_assets.definitions import build_definitions
from onering_assets.resources.locks import FileLocks
from onering_assets.settings import Settings
from tests.airflow_bridge.dagster_runs import (
    checks_evaluated,
    failure_messages,
    run_status,
    runs_of,
    wait_for,
)

pytestmark = pytest.mark.slow


def export_one_dag(tmp_path: Path, select: str, **render_args) -> tuple[Path, Path]:
    """The DAG ``onering`` (one task per asset) of ``select``; (dags folder, state folder)."""
    state = tmp_path / "state"
    config = replace(RenderConfig(), grouping="one", select=select, **render_args)
    defs = build_definitions(Settings(profile="local", state_dir=state))
    write(tmp_path / "dags", render(snapshot(defs, config), config))
    return tmp_path / "dags", state


def test_failed_blocking_check_fails_once_without_retry(
    tmp_path: Path, make_source, flights_jan_feb: pd.DataFrame, run_dag
) -> None:
    dags, state = export_one_dag(tmp_path, '+key:"silver/flights"', retries=2, retry_delay_s=0)
    bad = flights_jan_feb.copy()
    bad.loc[bad.index % 10 == 0, "arr_delay"] = "late"
    env = {"ONERING_STATE_DIR": str(state), "ONERING_SOURCE_DIR": str(make_source(flights=bad))}
    result = run_dag(dags, "onering", {"partition": "2013-01"}, **env)
    assert result["tasks"]["silver__flights"] == "failed", result["log"][-3000:]
    assert result["tries"]["silver__flights"] == 1  # retries=2, yet no retry
    assert [r.status.value for r in runs_of(state, "silver__flights")] == ["FAILURE"]
    assert "check silver/flights:reject_rate failed" in result["log"]


def hold(lock_path: Path) -> int:
    """Take the store's lock as another process would (the same flock)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_busy_store_is_retried_and_the_retry_succeeds(
    tmp_path: Path, make_source, start_dag
) -> None:
    dags, state = export_one_dag(tmp_path, '+key:"silver/airlines"', retries=1, retry_delay_s=4)
    settings = Settings(profile="local", state_dir=state)
    fd = hold(settings.clickhouse_dir.with_suffix(".lock"))
    env = {
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "ONERING_LOCK_TIMEOUT": "1",
    }
    dag = start_dag(dags, "onering", {}, **env)
    try:
        wait_for(
            lambda: run_status(state, "silver__airlines", 1) == "FAILURE", "the busy first try"
        )
    finally:
        os.close(fd)  # released before the retry (4 s later)
    result = dag.result()
    assert result["tasks"]["silver__airlines"] == "success", result["log"][-3000:]
    assert result["tries"]["silver__airlines"] == 2
    first, second = runs_of(state, "silver__airlines")
    assert (first.status.value, second.status.value) == ("FAILURE", "SUCCESS")
    assert "is in use by" in failure_messages(state, first.run_id)


def onering_children(state: Path) -> list[int]:
    """Pids of live `onering` CLI processes working on ``state``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"onering_assets.cli" in cmdline and f"={state}".encode() in environ:
            pids.append(int(entry.name))
    return pids


@pytest.mark.parametrize("mode", ["in_process", "subprocess"])
def test_killed_task_ends_its_dagster_run_canceled_and_the_retry_succeeds(
    tmp_path: Path, make_source, start_dag, mode: str
) -> None:
    """SIGTERM is what Airflow sends a task it kills: the run behind it ends CANCELED
    (not left STARTED), a subprocess CLI does not outlive it, and the retry succeeds."""
    dags, state = export_one_dag(
        tmp_path,
        '+key:"silver/weather"',
        retries=1,
        retry_delay_s=0,
        mode=mode,
        python=sys.executable,
    )
    env = {
        "ONERING_STATE_DIR": str(state),
        "ONERING_SOURCE_DIR": str(make_source()),
        "ONERING_LOCK_TIMEOUT": "600",  # (longer than the slowest cancel seen in CI)
    }
    # The first try waits at Silver weather's publication lock, held here, so it is still
    # STARTED when the task is killed (a one-month build could finish between two polls:
    # it did once in CI, and the test waited for a STARTED it never saw).
    with contextlib.ExitStack() as held:
        held.enter_context(
            FileLocks(state / "clickhouse.locks").hold("publish:silver.weather", what="a test")
        )
        dag = start_dag(dags, "onering", {"partition": "2013-01"}, **env)
        wait_for(lambda: run_status(state, "silver__weather", 1) == "STARTED", "the first try")
        # ... and inside its step: staged and audited, waiting to publish (a SIGTERM in the
        # run's first moments, before its step, is not a cancel Dagster sees).
        checks = len(silver_checks(load_catalog().sql_table("silver", "weather")))
        wait_for(lambda: checks_evaluated(state, "silver__weather", 1) >= checks, "the audit")
        dag.proc.send_signal(signal.SIGTERM)
        # Under a loaded CI machine a cancel has taken over a minute: wait for any end, then
        # say which.
        ended = {"CANCELED", "SUCCESS", "FAILURE"}
        wait_for(lambda: run_status(state, "silver__weather", 1) in ended, "the cancel", 240)
    assert run_status(state, "silver__weather", 1) == "CANCELED"
    result = dag.result()
    assert result["tasks"]["silver__weather"] == "success", result["log"][-3000:]
    assert result["tries"]["silver__weather"] == 2
    first, second = runs_of(state, "silver__weather")
    assert (first.status.value, second.status.value) == ("CANCELED", "SUCCESS")
    assert onering_children(state) == []
