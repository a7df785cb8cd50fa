"""The Gold Postgres stopped or killed mid-run: real `onering` processes, embedded Postgres, chDB.

Two ways the embedded server goes away: ``pg_ctl stop -m fast`` (an operator, a shutdown) and
SIGKILL of the postmaster (a crash, the OOM killer; it leaves a stale ``postmaster.pid``). A
test-only fault point (``ONERING_FAULT=gold.publish.stop_postgres`` / ``kill_postgres``, see
onering_assets/gold/assets.py) does it inside the Gold transaction, after the publish's DELETE
+ INSERT and before COMMIT, while the run's process keeps running. What each test asserts:
- the run fails with exit 1 and ONE line naming the server and what to do, no traceback; its
  ``--json`` summary is retryable and the Airflow bridge's verdict retries it (it is not a
  failed blocking check);
- Gold keeps its complete previous version (the transaction was never committed);
- a plain re-run (a new process) starts the server again and publishes the new version; so
  do `onering sql` and `onering check`, and a retry inside the same process (the Airflow
  bridge's in_process mode);
- a server that cannot start at all is one line naming the log's FATAL line.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psutil
import pytest

from airflow_bridge.errors import ChecksFailedError, RunFailedError
from airflow_bridge.runs import verdict
from onering_assets.resources import embedded_pg, embedded_pg_log
from onering_assets.resources.postgres import stop_embedded
from tests.conftest import gold_rows, settings_for
from tests.test_faults import ok, onering

TABLE = "carrier_monthly_performance"
BUILD = ("--select", f'+key:"gold/{TABLE}"', "--partition", "2013-01")
GOLD = ("--select", f'key:"gold/{TABLE}"', "--partition", "2013-01")
FAULTS = {mode: f"gold.publish.{mode}_postgres" for mode in ("stop", "kill")}


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A state folder whose embedded server is stopped at the end (this process starts it)."""
    folder = tmp_path / "state"
    yield folder
    stop_embedded(settings_for(folder, None).postgres_dir.resolve())


def fewer_flights(make_source, flights: pd.DataFrame) -> Path:
    """A source whose January gives a different mart: UA's flights of the 1st removed."""
    kept = flights[~((flights.carrier == "UA") & (flights.day == "1"))]
    return make_source(flights=kept.reset_index(drop=True))


def down_message(proc: subprocess.CompletedProcess[str], pg_dir: Path) -> str:
    """The one line saying the server went away (asserting it is one line, no traceback)."""
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output and "Stack Trace" not in output, output
    start = f"The embedded Gold Postgres in {pg_dir} stopped ("
    lines = [line for line in output.splitlines() if start in line]
    assert len(lines) == 1, output
    message = lines[0][lines[0].index(start) :]
    assert message.endswith(
        ". Its transaction was rolled back, nothing was written. Run again: OneRing restarts it."
    ), message
    return message


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stop", "kill"])
def test_postgres_gone_during_gold_publish_is_one_retryable_line_and_a_rerun_publishes(
    state: Path, make_source, flights_jan_feb: pd.DataFrame, mode: str
) -> None:
    ok(onering(state, make_source(), "materialize", *BUILD))
    settings = settings_for(state, None)
    pg_dir = settings.postgres_dir.resolve()
    before = gold_rows(settings, TABLE)
    source = fewer_flights(make_source, flights_jan_feb)

    failed = onering(state, source, "materialize", *BUILD, fault=FAULTS[mode])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    down_message(failed, pg_dir)
    if mode == "kill":  # the crash left its postmaster.pid behind
        assert embedded_pg.postmaster_pid(pg_dir) is not None
    # This process started the server first; its next connection starts it again.
    assert gold_rows(settings, TABLE) == before

    failed = onering(state, source, "materialize", "--json", *GOLD, fault=FAULTS[mode])
    assert failed.returncode == 1, failed.stdout + failed.stderr
    summary = json.loads(failed.stdout)
    assert summary["success"] is False and summary["retryable"] is True
    assert summary["failed_checks"] == []
    assert len(summary["errors"]) == 1
    assert f"The embedded Gold Postgres in {pg_dir} stopped (" in summary["errors"][0]
    with pytest.raises(RunFailedError) as raised:
        verdict(summary)
    assert not isinstance(raised.value, ChecksFailedError)
    assert gold_rows(settings, TABLE) == before

    ok(onering(state, source, "materialize", *GOLD))
    after = gold_rows(settings, TABLE)
    assert len(after) == len(before) and after != before


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stop", "kill"])
def test_postgres_gone_while_gold_computes_is_started_again_and_the_run_publishes(
    state: Path, make_source, flights_jan_feb: pd.DataFrame, mode: str
) -> None:
    """The run's process started the server (migrations), then lost it before connecting."""
    ok(onering(state, make_source(), "materialize", *BUILD))
    settings = settings_for(state, None)
    before = gold_rows(settings, TABLE)
    source = fewer_flights(make_source, flights_jan_feb)

    pg_dir = settings.postgres_dir.resolve()
    server = embedded_pg.postmaster_pid(pg_dir)
    ok(onering(state, source, "materialize", *BUILD, fault=f"gold.compute.{mode}_postgres"))
    # Another server: the run's process stopped the first and started this one.
    assert embedded_pg.postmaster_pid(pg_dir) not in (server, None)
    after = gold_rows(settings, TABLE)
    assert len(after) == len(before) and after != before


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["stop", "kill"])
def test_sql_and_check_start_a_stopped_or_killed_server_again(
    state: Path, make_source, mode: str
) -> None:
    source = make_source()
    ok(onering(state, source, "materialize", *BUILD))
    settings = settings_for(state, None)
    pg_dir = settings.postgres_dir.resolve()
    before = gold_rows(settings, TABLE)  # this process holds the server from here on

    stop_embedded(pg_dir, kill=mode == "kill")
    assert (embedded_pg.postmaster_pid(pg_dir) is not None) == (mode == "kill")
    query = ok(
        onering(state, source, "sql", "--format", "csv", f"SELECT count(*) FROM gold.{TABLE}")
    )
    assert query.stdout.splitlines() == ["count", str(len(before))]
    assert query.stderr == ""

    stop_embedded(pg_dir, kill=mode == "kill")
    checked = ok(onering(state, source, "check", "--select", f'key:"gold/{TABLE}"'))
    assert "0 failed" in checked.stdout

    stop_embedded(pg_dir, kill=mode == "kill")
    assert gold_rows(settings, TABLE) == before  # and this process, whose server it was


@pytest.mark.slow
def test_an_in_process_retry_starts_the_killed_server_again(
    state: Path, make_source, flights_jan_feb: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Airflow bridge's in_process mode: the retry runs in the same Python process."""
    from onering_assets.runner import run_keys

    ok(onering(state, make_source(), "materialize", *BUILD))
    settings = settings_for(state, None)
    before = gold_rows(settings, TABLE)
    source = fewer_flights(make_source, flights_jan_feb)
    ok(onering(state, source, "materialize", "--select", '+key:"silver/flights"', *GOLD[2:]))
    monkeypatch.setenv("ONERING_STATE_DIR", str(state))
    monkeypatch.setenv("ONERING_SOURCE_DIR", str(source))
    monkeypatch.setenv("DAGSTER_HOME", str(state / "dagster"))

    monkeypatch.setenv("ONERING_FAULT", FAULTS["kill"])
    failed = run_keys([f"gold/{TABLE}"], "2013-01", "2013-01", tags={})
    assert not failed.success and failed.to_dict()["retryable"] is True
    assert len(failed.errors()) == 1 and "Gold Postgres" in failed.errors()[0]
    assert gold_rows(settings, TABLE) == before

    monkeypatch.delenv("ONERING_FAULT")
    retried = run_keys([f"gold/{TABLE}"], "2013-01", "2013-01", tags={})
    assert retried.success, retried.failures
    after = gold_rows(settings, TABLE)
    assert len(after) == len(before) and after != before


def test_a_server_that_cannot_start_is_one_line_naming_its_log(state: Path) -> None:
    pg_dir = settings_for(state, None).postgres_dir.resolve()
    embedded_pg.start(pg_dir)
    stop_embedded(pg_dir)
    with (pg_dir / "postgresql.auto.conf").open("a") as conf:
        conf.write("shared_buffers = 'plenty'\n")

    result = onering(state, None, "sql", "SELECT 1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == "" and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr == (
        f"error: The embedded Postgres in {pg_dir} could not be started (invalid value for "
        'parameter "shared_buffers": "plenty"; configuration file "postgresql.auto.conf" '
        f"contains errors); see {pg_dir / 'log'}.\n"
    )


def test_a_start_waits_until_a_killed_postmaster_is_reaped(tmp_path: Path) -> None:
    """Until init reaps a killed postmaster, the wheel and pg_ctl take the zombie for alive."""
    zombie = subprocess.Popen(["true"])  # exits at once; a zombie until waited for
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.01)
    data_dir = tmp_path / "postgres"
    data_dir.mkdir()
    (data_dir / "postmaster.pid").write_text(f"{zombie.pid}\n{data_dir}\n")
    reaper = threading.Timer(0.5, zombie.wait)
    started = time.monotonic()
    reaper.start()
    embedded_pg._await_reaped(data_dir)
    assert time.monotonic() - started >= 0.4
    assert not psutil.pid_exists(zombie.pid)


def test_the_fatal_line_keeps_what_its_process_logged_just_before_across_a_clock_tick(
    tmp_path: Path,
) -> None:
    # The CI run where the setting's LOG line and its FATAL fell in different milliseconds:
    # the process is the pid, not the timestamp.
    (tmp_path / "log").write_text(
        "2026-12-01 13:47:02.037 UTC [21129] LOG:  database system is shut down\n"
        '2026-12-01 13:47:49.223 UTC [21325] LOG:  invalid value for parameter "shared_buffers":'
        ' "plenty"\n'
        '2026-12-01 13:47:49.224 UTC [21325] FATAL:  configuration file "postgresql.auto.conf"'
        " contains errors\n"
    )
    assert embedded_pg_log.last_fatal(tmp_path, 0) == (
        'invalid value for parameter "shared_buffers": "plenty"; '
        'configuration file "postgresql.auto.conf" contains errors'
    )
