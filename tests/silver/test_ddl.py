"""Silver's DDL is a Liquibase changelog applied to ClickHouse and recorded in its
``databasechangelog``; a YAML change that no changeset carries is refused, with the fix.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import clickhouse_connect
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.changelogs.formatted import LIQUIBASE_VERSION, read_changelog
from onering_assets.errors import ChangelogError, StoreBusyError
from onering_assets.resources.locks import FileLocks
from onering_assets.silver import ddl, schema

# The columns and types com.mediarithmics:liquibase-clickhouse creates its history with
# (CreateDatabaseChangeLogTableClickHouse); a real Liquibase with it reads these rows.
EXTENSION_LOG_COLUMNS = [
    ("ID", "String"),
    ("AUTHOR", "String"),
    ("FILENAME", "String"),
    ("DATEEXECUTED", "DateTime64(3)"),
    ("ORDEREXECUTED", "UInt64"),
    ("EXECTYPE", "String"),
    ("MD5SUM", "Nullable(String)"),
    ("DESCRIPTION", "Nullable(String)"),
    ("COMMENTS", "Nullable(String)"),
    ("TAG", "Nullable(String)"),
    ("LIQUIBASE", "Nullable(String)"),
    ("CONTEXTS", "Nullable(String)"),
    ("LABELS", "Nullable(String)"),
    ("DEPLOYMENT_ID", "Nullable(String)"),
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator:
    c = clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'clickhouse'}")
    yield c
    c.close()


@pytest.fixture
def locks(tmp_path: Path) -> FileLocks:
    return FileLocks(tmp_path / "locks", timeout_s=0.5)


@pytest.fixture
def platform(tmp_path: Path) -> Path:
    """A copy of platform/ to edit: its Silver YAML and its ClickHouse changelog."""
    copy = tmp_path / "platform"
    shutil.copytree(ddl.CHANGELOG_DIR.parents[1], copy)
    return copy


def changelog_of(platform: Path) -> Path:
    return platform / "versioning" / "liquibase-clickhouse"


def rows(client) -> list[tuple]:
    return client.query(
        "SELECT ID, AUTHOR, FILENAME, MD5SUM, EXECTYPE, DESCRIPTION, LIQUIBASE, ORDEREXECUTED,"
        " DEPLOYMENT_ID FROM default.databasechangelog ORDER BY ORDEREXECUTED"
    ).result_rows


def test_the_changelog_creates_every_declared_table_and_records_it(client, locks) -> None:
    changesets = read_changelog(ddl.CHANGELOG_DIR)
    applied = ddl.apply_changelogs(client, locks)
    assert applied == [cs.label for cs in changesets]
    for table in load_catalog().silver:
        schema.verify(client, table)  # raises on any difference
    recorded = rows(client)
    assert [(r[0], r[1], r[2], r[3]) for r in recorded] == [
        (cs.id, cs.author, cs.filename, cs.checksum) for cs in changesets
    ]
    assert all(r[2].startswith("changelog/") and r[3].startswith("8:") for r in recorded)
    assert {(r[4], r[5], r[6]) for r in recorded} == {("EXECUTED", "sql", LIQUIBASE_VERSION)}
    assert [r[7] for r in recorded] == list(range(1, len(changesets) + 1))
    assert len({r[8] for r in recorded}) == 1  # one deployment
    # Run again: nothing to do, nothing recorded twice.
    assert ddl.apply_changelogs(client, locks) == []
    assert ddl.pending_changesets(client) == []
    assert len(rows(client)) == len(changesets)


def test_the_history_has_the_layout_the_liquibase_extension_creates(client, locks) -> None:
    ddl.apply_changelogs(client, locks)
    columns = client.query(
        "SELECT name, type FROM system.columns WHERE database = 'default'"
        " AND table = 'databasechangelog' ORDER BY position"
    ).result_rows
    assert [tuple(c) for c in columns] == EXTENSION_LOG_COLUMNS
    lock = client.query(
        "SELECT name, type FROM system.columns WHERE database = 'default'"
        " AND table = 'databasechangeloglock' ORDER BY position"
    ).result_rows
    assert [c[0] for c in lock] == ["ID", "LOCKED", "LOCKGRANTED", "LOCKEDBY"]


def test_a_yaml_column_without_a_changeset_is_refused_with_the_changeset_to_add(
    client, locks, platform: Path
) -> None:
    ddl.apply_changelogs(client, locks, changelog_of(platform))
    yml = platform / "analytics" / "clickhouse" / "silver" / "weather.yml"
    yml.write_text(
        yml.read_text().replace(
            "  - {name: visib,",
            "  - {name: cloud_cover, type: Nullable(Float64), description: Okta.}\n"
            "  - {name: visib,",
        )
    )
    sql = platform / "analytics" / "clickhouse" / "silver" / "weather.sql"
    sql.write_text(
        sql.read_text().replace("visib_mi AS visib", "visib_mi AS visib, NULL AS cloud_cover")
    )
    weather = load_catalog.__wrapped__(platform).sql_table("silver", "weather")
    fix = "ALTER TABLE silver.weather ADD COLUMN `cloud_cover` Nullable(Float64) AFTER `pressure`"
    with pytest.raises(ChangelogError) as refused:
        schema.verify(client, weather)
    message = str(refused.value)
    assert "is a changeset under platform/versioning/liquibase-clickhouse/changelog/" in message
    assert fix in message
    # The changeset the message names makes the table what the YAML declares.
    (changelog_of(platform) / "changelog" / "003-weather-cloud-cover.sql").write_text(
        f"--liquibase formatted sql\n\n--changeset you:003-weather-cloud-cover\n{fix};\n"
    )
    assert ddl.apply_changelogs(client, locks, changelog_of(platform)) == [
        "you:003-weather-cloud-cover"
    ]
    schema.verify(client, weather)


def test_a_type_key_or_extra_column_difference_is_named(client, locks) -> None:
    ddl.apply_changelogs(client, locks)
    client.command("ALTER TABLE silver.flights MODIFY COLUMN dep_delay Nullable(Float32)")
    client.command("ALTER TABLE silver.flights ADD COLUMN note String")
    client.command("DROP TABLE silver.flights_rejects_failed")
    with pytest.raises(ChangelogError) as refused:
        schema.verify(client, load_catalog().sql_table("silver", "flights"))
    message = str(refused.value)
    assert "column `dep_delay` is Nullable(Float32) in ClickHouse but declared" in message
    assert "column `note` String is in ClickHouse but not declared" in message
    assert "silver.flights_rejects_failed does not exist: no changeset creates it" in message
    assert "CREATE TABLE IF NOT EXISTS silver.flights_rejects_failed (" in message


def test_an_edited_applied_changeset_is_refused_naming_its_file(
    client, locks, platform: Path
) -> None:
    ddl.apply_changelogs(client, locks, changelog_of(platform))
    tables = changelog_of(platform) / "changelog" / "001-silver-tables.sql"
    tables.write_text(tables.read_text().replace("`name` String,", "`name` Nullable(String),", 1))
    with pytest.raises(
        ChangelogError, match=r"onering:002-airlines in changelog/001-silver-tables"
    ):
        ddl.apply_changelogs(client, locks, changelog_of(platform))
    with pytest.raises(ChangelogError, match="after it was applied to ClickHouse"):
        ddl.pending_changesets(client, changelog_of(platform))


def test_a_failing_changeset_is_not_recorded_and_stops_the_run(
    client, locks, platform: Path
) -> None:
    folder = changelog_of(platform) / "changelog"
    (folder / "003-bad.sql").write_text(
        "--liquibase formatted sql\n\n"
        "--changeset you:003-bad\nALTER TABLE silver.airlines ADD COLUMN x NoSuchType;\n"
        "--changeset you:004-after\n"
        "ALTER TABLE silver.airlines ADD COLUMN IF NOT EXISTS y String;\n"
    )
    with pytest.raises(ChangelogError, match=r"you:003-bad in .*003-bad\.sql failed on ClickHouse"):
        ddl.apply_changelogs(client, locks, changelog_of(platform))
    recorded = [r[0] for r in rows(client)]
    assert "003-bad" not in recorded and "004-after" not in recorded
    assert "002-row-column" in recorded  # the changesets before it stay applied
    columns = client.query(
        "SELECT name FROM system.columns WHERE database = 'silver' AND table = 'airlines'"
    ).result_rows
    assert ("y",) not in columns  # nothing after the failure ran
    (folder / "003-bad.sql").write_text(
        (folder / "003-bad.sql").read_text().replace("NoSuchType", "Nullable(String)")
    )
    assert ddl.apply_changelogs(client, locks, changelog_of(platform)) == [
        "you:003-bad",
        "you:004-after",
    ]


def test_a_running_liquibase_holds_onering_off(client, locks) -> None:
    ddl.apply_changelogs(client, locks)
    # What the extension's LockDatabaseChangeLogClickHouse writes when Liquibase starts.
    client.command(
        "INSERT INTO default.databasechangeloglock (ID, LOCKED, LOCKEDBY, LOCKGRANTED)"
        " VALUES (1, 1, 'ci-runner (10.0.0.7)', now64(3))"
    )
    with pytest.raises(StoreBusyError, match=r"Liquibase holds its changelog lock .*ci-runner"):
        ddl.apply_changelogs(client, locks)
    # UnlockDatabaseChangelogClickHouse, when it is done.
    client.command(
        "ALTER TABLE default.databasechangeloglock UPDATE LOCKED = 0, LOCKEDBY = NULL,"
        " LOCKGRANTED = NULL WHERE ID = 1 AND LOCKED = 1 SETTINGS mutations_sync = 1"
    )
    assert ddl.apply_changelogs(client, locks) == []


def test_two_onering_processes_take_turns(client, locks) -> None:
    with (
        locks.hold(ddl.MIGRATE_LOCK, what="a test"),
        pytest.raises(StoreBusyError, match="Silver's changelog is in use"),
    ):
        ddl.apply_changelogs(client, locks)
    assert ddl.apply_changelogs(client, locks)  # the lock released, it migrates


@pytest.mark.parametrize(
    ("sql", "statements"),
    [
        ("SELECT 1;\nSELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("SELECT ';' AS s; -- a; comment\nSELECT `a;b`", ["SELECT ';' AS s", "SELECT `a;b`"]),
        ("SELECT 'it\\'s;' ;;", ["SELECT 'it\\'s;'"]),
    ],
)
def test_statements_are_split_at_semicolons_outside_quotes_and_comments(
    sql: str, statements: list[str]
) -> None:
    assert ddl.split_statements(sql) == statements
