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
    assert (
        "silver.flights_rejects_failed does not exist, though changeset"
        " onering:010-flights-rejects-failed" in message
    )
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
        ("ALTER x /* a; it's */;\nSELECT 1", ["ALTER x", "SELECT 1"]),
    ],
)
def test_statements_are_split_at_semicolons_outside_quotes_and_comments(
    sql: str, statements: list[str]
) -> None:
    assert ddl.split_statements(sql) == statements


def test_a_type_spelled_otherwise_is_the_same_type(client, locks, platform: Path) -> None:
    """``Decimal(10,2)`` in the YAML is ClickHouse's ``Decimal(10, 2)``, as for column_schema."""
    ddl.apply_changelogs(client, locks, changelog_of(platform))
    yml = platform / "analytics" / "clickhouse" / "silver" / "airlines.yml"
    yml.write_text(
        yml.read_text().replace(
            "  - {name: name,",
            "  - {name: fee, type: 'Decimal(10,2)', description: A fee.}\n  - {name: name,",
        )
    )
    sql = platform / "analytics" / "clickhouse" / "silver" / "airlines.sql"
    text = sql.read_text()
    assert " AS name" in text
    sql.write_text(text.replace(" AS name", " AS name, toDecimal64(0, 2) AS fee", 1))
    airlines = load_catalog.__wrapped__(platform).sql_table("silver", "airlines")
    with pytest.raises(ChangelogError) as refused:
        schema.verify(client, airlines, changelog_of(platform))
    fix = "ALTER TABLE silver.airlines ADD COLUMN `fee` Decimal(10,2) AFTER `carrier`"
    assert fix in str(refused.value)
    (changelog_of(platform) / "changelog" / "003-fee.sql").write_text(
        f"--liquibase formatted sql\n--changeset you:003-fee\n{fix};\n"
    )
    ddl.apply_changelogs(client, locks, changelog_of(platform))
    schema.verify(client, airlines, changelog_of(platform))  # Decimal(10, 2) in ClickHouse


def test_other_keys_are_refused_with_the_changeset_that_rebuilds_the_table(
    client, locks, platform: Path
) -> None:
    ddl.apply_changelogs(client, locks, changelog_of(platform))
    client.command("INSERT INTO silver.planes (tailnum) VALUES ('N1'), ('N2')")
    yml = platform / "analytics" / "clickhouse" / "silver" / "planes.yml"
    text = yml.read_text()
    assert "order_by: [tailnum]" in text
    yml.write_text(text.replace("order_by: [tailnum]", "order_by: [tailnum, _ingested_at]"))
    planes = load_catalog.__wrapped__(platform).sql_table("silver", "planes")
    with pytest.raises(ChangelogError) as refused:
        schema.verify(client, planes, changelog_of(platform))
    message = str(refused.value)
    assert "keys differ: ClickHouse has PARTITION BY (none) ORDER BY (tailnum)" in message
    steps = message.split("Keys cannot change in place: in a changeset, ", 1)[1].splitlines()[0]
    (changelog_of(platform) / "changelog" / "003-planes-keys.sql").write_text(
        f"--liquibase formatted sql\n--changeset you:003-planes-keys\n{steps};\n"
    )
    assert ddl.apply_changelogs(client, locks, changelog_of(platform)) == ["you:003-planes-keys"]
    schema.verify(client, planes, changelog_of(platform))
    assert client.query("SELECT tailnum FROM silver.planes ORDER BY 1").result_rows == [
        ("N1",),
        ("N2",),
    ]  # the rows came along


def test_a_table_dropped_after_its_changeset_ran_names_that_changeset(client, locks) -> None:
    ddl.apply_changelogs(client, locks)
    client.command("DROP TABLE silver.airlines")
    with pytest.raises(ChangelogError) as refused:
        schema.verify(client, load_catalog().sql_table("silver", "airlines"))
    message = str(refused.value)
    assert "changeset onering:002-airlines (001-silver-tables.sql) that creates it" in message
    assert "dropped outside the changelog" in message
    assert "CREATE DATABASE IF NOT EXISTS silver;" in message


def test_a_failing_statement_is_named_with_what_of_its_changeset_ran(
    client, locks, platform: Path
) -> None:
    (changelog_of(platform) / "changelog" / "003-two.sql").write_text(
        "--liquibase formatted sql\n--changeset you:003-two\n"
        "ALTER TABLE silver.airlines ADD COLUMN note1 String;\n"
        "ALTER TABLE silver.airlines ADD COLUMN note2 NoSuchType;\n"
    )
    with pytest.raises(ChangelogError) as refused:
        ddl.apply_changelogs(client, locks, changelog_of(platform))
    message = str(refused.value)
    assert "failed on ClickHouse at statement 2 of 2" in message
    assert "its statements 1-1 ran and stay" in message
    assert "\n" not in message


def test_a_history_table_of_another_shape_is_one_line(client, locks) -> None:
    client.command(
        "CREATE TABLE default.databasechangelog (id String, author String) ENGINE MergeTree"
        " ORDER BY id"
    )
    with pytest.raises(ChangelogError, match=r"Reading default\.databasechangelog failed") as bad:
        ddl.pending_changesets(client)
    assert "\n" not in str(bad.value)
    with pytest.raises(ChangelogError, match=r"default\.databasechangelog failed"):
        ddl.apply_changelogs(client, locks)
