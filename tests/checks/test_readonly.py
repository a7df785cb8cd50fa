"""ClickHouse itself refuses writes under ``readonly=2``, whatever passes (or skips) a parser.

``onering sql --target silver`` parses the statement and then runs it with
``settings={"readonly": 2}``. These tests skip the parser and send each write straight to
the real engine (chDB) with that setting: the store is the layer that refuses, and the
data and the file system are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from onering_assets.resources import ClickHouseResource

READ_ONLY = {"readonly": 2}
WRITES = [
    "INSERT INTO silver.t VALUES (4, 'd')",
    "INSERT INTO silver.t SELECT number, 'x' FROM numbers(3)",
    "ALTER TABLE silver.t DELETE WHERE 1",
    "ALTER TABLE silver.t UPDATE v = 'z' WHERE 1",
    "ALTER TABLE silver.t ADD COLUMN w UInt8",
    "ALTER TABLE silver.t DROP PARTITION tuple()",
    "TRUNCATE TABLE silver.t",
    "DROP TABLE silver.t",
    "DROP DATABASE silver",
    "RENAME TABLE silver.t TO silver.u",
    "CREATE TABLE silver.u (a UInt8) ENGINE = Memory",
    "CREATE DATABASE other",
    "OPTIMIZE TABLE silver.t FINAL",
    "SELECT 1 SETTINGS readonly = 0",
    "INSERT INTO silver.t SETTINGS readonly = 0 VALUES (5, 'e')",
    "SET readonly = 0",
]
# Measured on chDB 26.9: readonly=2 lets these two write a file (relative to the process's
# working directory). The store is not the refusing layer for them: the statement check in
# front of it must be (table functions and INTO OUTFILE refused). strict: if ClickHouse
# starts refusing them, this test fails and the docs can say so.
FILE_WRITES = [
    "INSERT INTO FUNCTION file('planted.csv', 'CSV') SELECT 1",
    "SELECT 1 INTO OUTFILE 'planted.csv'",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ClickHouseResource, Path]]:
    folder = tmp_path_factory.mktemp("chdb")
    ch = ClickHouseResource(dsn=f"chdb://{folder / 'clickhouse'}")
    with ch.session() as client:
        client.command("CREATE DATABASE IF NOT EXISTS silver")
        client.command("CREATE TABLE silver.t (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
        client.command("INSERT INTO silver.t VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    yield ch, folder


def state(ch: ClickHouseResource, folder: Path) -> tuple:
    with ch.session() as client:
        tables = client.query(
            "SELECT database, name, engine FROM system.tables"
            " WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')"
            " ORDER BY 1, 2"
        ).result_rows
        columns = client.query(
            "SELECT table, name, type FROM system.columns WHERE database = 'silver' ORDER BY 1, 2"
        ).result_rows
        rows = client.query("SELECT k, v FROM silver.t ORDER BY k").result_rows
        parts = client.query(
            "SELECT name FROM system.parts WHERE database = 'silver' AND active ORDER BY name"
        ).result_rows
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("planted.csv"))
    return tables, columns, rows, parts, files


@pytest.mark.parametrize(
    "statement",
    [
        *WRITES,
        *(
            pytest.param(s, marks=pytest.mark.xfail(strict=True, reason="readonly=2 allows it"))
            for s in FILE_WRITES
        ),
    ],
)
def test_the_store_refuses_a_write_under_readonly(
    store, statement: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ch, folder = store
    monkeypatch.chdir(folder)  # where a file write would land
    before = state(ch, folder)
    with ch.session() as client, pytest.raises(DatabaseError) as refused:
        client.query(statement, settings=READ_ONLY)
    assert "(READONLY)" in str(refused.value)  # ClickHouse error 164, not a parse error
    assert state(ch, folder) == before


@pytest.mark.parametrize("statement", WRITES[:3])
def test_a_command_is_refused_too(store, statement: str) -> None:
    ch, folder = store
    before = state(ch, folder)
    with ch.session() as client, pytest.raises(DatabaseError, match=r"(?i)readonly"):
        client.command(statement, settings=READ_ONLY)
    assert state(ch, folder) == before


def test_reads_still_run_under_readonly(store) -> None:
    ch, _ = store
    with ch.session() as client:
        result = client.query("SELECT count(), sum(k) FROM silver.t", settings=READ_ONLY)
    assert result.result_rows == [(3, 6)]


def test_without_readonly_the_same_write_goes_through(tmp_path: Path) -> None:
    """The control: the refusals above come from the setting, not from the statements."""
    ch = ClickHouseResource(dsn=f"chdb://{tmp_path / 'clickhouse'}")
    with ch.session() as client:
        client.command("CREATE DATABASE IF NOT EXISTS silver")
        client.command("CREATE TABLE silver.t (k UInt32, v String) ENGINE = MergeTree ORDER BY k")
        client.query("INSERT INTO silver.t VALUES (4, 'd')")
        assert client.query("SELECT count() FROM silver.t").result_rows == [(1,)]
