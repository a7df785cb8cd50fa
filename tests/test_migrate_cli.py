"""`onering migrate`: lists, then applies, Gold's and Silver's changesets; refuses an edit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import clickhouse_connect

from onering_assets.changelogs.formatted import read_changelog
from onering_assets.gold.assets import LIQUIBASE_DIR
from onering_assets.silver.ddl import CHANGELOG_DIR


def onering(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ONERING_STATE_DIR": str(state),
        "DAGSTER_HOME": str(state / "dagster"),
        "COLUMNS": "400",
    }
    return subprocess.run(
        [sys.executable, "-m", "onering_assets.cli", "migrate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def silver(state: Path, sql: str) -> list[tuple]:
    client = clickhouse_connect.get_client(dsn=f"chdb://{state / 'clickhouse'}")
    try:
        return [tuple(r) for r in client.query(sql).result_rows]
    finally:
        client.close()


def test_status_lists_migrate_applies_and_an_edit_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    gold = [cs.label for cs in read_changelog(LIQUIBASE_DIR)]
    silver_labels = [cs.label for cs in read_changelog(CHANGELOG_DIR)]

    listed = onering(state, "--status")
    assert listed.returncode == 0, listed.stderr
    assert f"Gold (Postgres): pending {len(gold)} changeset(s)" in listed.stdout
    assert f"Silver (ClickHouse): pending {len(silver_labels)} changeset(s)" in listed.stdout
    assert all(label in listed.stdout for label in gold + silver_labels)
    assert listed.stdout.index("Gold (Postgres)") < listed.stdout.index("Silver (ClickHouse)")
    # --status created nothing: neither store was started or made to say it.
    assert not (state / "clickhouse").exists() and not (state / "postgres").exists()

    applied = onering(state)
    assert applied.returncode == 0, applied.stderr
    assert f"Gold (Postgres): applied {len(gold)} changeset(s)" in applied.stdout
    assert f"Silver (ClickHouse): applied {len(silver_labels)} changeset(s)" in applied.stdout
    assert silver(state, "SELECT count() FROM default.databasechangelog") == [(len(silver_labels),)]
    again = onering(state)
    assert again.returncode == 0, again.stderr
    assert "Silver (ClickHouse): applied 0 changeset(s) (default.databasechangelog): nothing" in (
        again.stdout
    )

    # A recorded checksum that the file no longer gives: what an edit after apply looks like.
    silver(
        state,
        "ALTER TABLE default.databasechangelog UPDATE MD5SUM = '8:00000000000000000000000000000000'"
        " WHERE ID = '008-flights' SETTINGS mutations_sync = 1",
    )
    refused = onering(state)
    assert refused.returncode == 2
    assert "onering:008-flights in changelog/001-silver-tables.sql" in refused.stderr
    assert "was edited after it was applied to ClickHouse" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "Gold (Postgres): applied 0 changeset(s)" in refused.stdout  # printed before Silver's
    assert len(refused.stderr.strip().splitlines()) == 1

    # The checksum restored, --status on the created stores lists nothing pending.
    flights = next(cs for cs in read_changelog(CHANGELOG_DIR) if cs.id == "008-flights")
    silver(
        state,
        f"ALTER TABLE default.databasechangelog UPDATE MD5SUM = '{flights.checksum}'"
        " WHERE ID = '008-flights' SETTINGS mutations_sync = 1",
    )
    status = onering(state, "--status")
    assert status.returncode == 0, status.stderr
    assert "Silver (ClickHouse): pending 0 changeset(s)" in status.stdout
