"""The embedded ClickHouse store has one owner: a second process waits, then fails clearly."""

import subprocess
import sys
import time
from pathlib import Path

from onering_assets.resources import ClickHouseResource

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
