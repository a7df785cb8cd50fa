"""The embedded ClickHouse store has one owner: a second process waits, then fails clearly."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from onering_assets.errors import StoreBusyError
from onering_assets.resources import ClickHouseResource, PostgresResource
from onering_assets.resources.locks import FileLocks, PgLocks

SECOND_PROCESS = """
import sys
from onering_assets.errors import StoreBusyError
from onering_assets.resources import ClickHouseResource
try:
    ClickHouseResource(dsn=sys.argv[1], lock_timeout_s=1.0).get_client()
except StoreBusyError as e:
    print(e)
    sys.exit(3)
"""


def test_second_process_gets_a_clear_error_not_a_hang(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with ClickHouseResource(dsn=dsn).session() as client:
        assert client.query("SELECT 1").result_rows == [(1,)]
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", SECOND_PROCESS, dsn], capture_output=True, text=True, timeout=120
        )
        waited = time.monotonic() - started
    assert proc.returncode == 3, proc.stderr
    assert "is in use by process" in proc.stdout
    assert "ONERING_LOCK_TIMEOUT" in proc.stdout
    assert waited < 60


def test_store_is_released_after_the_session(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    with ClickHouseResource(dsn=dsn).session() as client:
        client.command("CREATE TABLE t (a Int32) ENGINE = MergeTree ORDER BY a")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from onering_assets.resources import ClickHouseResource as R;"
            " c = R(dsn=sys.argv[1], lock_timeout_s=5).get_client();"
            " print(c.query('EXISTS TABLE t').result_rows[0][0])",
            dsn,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip() == "1", proc.stderr


HOLD_AND_WAIT = """
import sys, time
from onering_assets.resources.locks import PgLocks
locks = PgLocks(sys.argv[1])
with locks.hold("publish:silver.flights", what="Publishing silver.flights"):
    print("held", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    return PostgresResource(embedded_dir=str(tmp_path_factory.mktemp("pg") / "pg")).conninfo()


def test_postgres_publication_lock_serializes_processes_and_dies_with_its_holder(
    pg_dsn: str,
) -> None:
    """A ClickHouse server has no process lock: a Postgres advisory lock serializes publish."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT, pg_dsn], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "held"
        locks = PgLocks(pg_dsn, timeout_s=0.5)
        assert locks.is_held("publish:silver.flights")
        assert not locks.is_held("publish:silver.weather")
        with (
            pytest.raises(StoreBusyError, match=r"locked by another run.*ONERING_LOCK_TIMEOUT"),
            locks.hold("publish:silver.flights", what="Publishing silver.flights"),
        ):
            pass
        holder.kill()  # SIGKILL: the server ends the session and its locks
        holder.wait(timeout=30)
        deadline = time.monotonic() + 10
        while locks.is_held("publish:silver.flights") and time.monotonic() < deadline:
            time.sleep(0.1)
        with locks.hold("publish:silver.flights", what="Publishing silver.flights"):
            assert locks.is_held("publish:silver.flights")  # seen from another session
        assert not locks.is_held("publish:silver.flights")
        locks.close()
    finally:
        holder.kill()


def test_file_locks_report_a_live_holder_and_free_a_dead_one(tmp_path: Path) -> None:
    locks = FileLocks(tmp_path / "locks", timeout_s=0.3)
    assert not locks.is_held("stage:silver.flights.abc")
    with locks.hold("stage:silver.flights.abc", what="staging"):
        assert locks.is_held("stage:silver.flights.abc")
        with pytest.raises(StoreBusyError), locks.hold("stage:silver.flights.abc", what="x"):
            pass
    assert not locks.is_held("stage:silver.flights.abc")


def test_a_runs_stage_lock_file_is_removed_on_release(tmp_path: Path) -> None:
    """One stage lock per run and table: kept files would grow without limit."""
    locks = FileLocks(tmp_path / "locks")
    with locks.hold("stage:bronze.flights.run1", what="staging"):
        assert len(list((tmp_path / "locks").iterdir())) == 1
    with locks.hold("publish:bronze.flights", what="publishing"):
        pass
    assert [p.name for p in (tmp_path / "locks").iterdir()] == ["publish-bronze.flights.lock"]
