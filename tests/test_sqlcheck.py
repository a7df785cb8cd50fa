"""The `onering sql` gate as a plain function (the stores' own refusals: tests/test_query.py)."""

from __future__ import annotations

import logging

import pytest

from onering_assets.errors import ReadOnlyError
from onering_assets.sqlcheck import Dialect, check_statement, detect_target

READS: list[tuple[Dialect, str]] = [
    ("clickhouse", "-- c\nSELECT 1"),
    ("clickhouse", "/* x */ SELECT 1;"),
    ("clickhouse", "(SELECT 1)"),
    ("clickhouse", "SELECT*FROM t"),
    ("clickhouse", "WITH a AS (SELECT 1) SELECT * FROM a"),
    ("clickhouse", "SELECT * FROM numbers(3)"),
    ("clickhouse", "SELECT * FROM generateRandom('a Int8') LIMIT 1"),
    ("clickhouse", "SELECT * FROM generate_series(1, 3)"),
    ("clickhouse", "SELECT format('{}', 1)"),
    ("clickhouse", "SHOW TABLES FROM silver"),
    ("clickhouse", "DESCRIBE TABLE silver.t"),
    ("clickhouse", "EXISTS TABLE silver.t"),
    ("clickhouse", "EXPLAIN PLAN header = 1 SELECT 1"),
    ("clickhouse", "SELECT 'a;b'"),
    ("postgres", "select 1;"),
    ("postgres", "TABLE gold.x"),
    ("postgres", "VALUES (1)"),
    ("postgres", "SHOW search_path"),
    ("postgres", "EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1"),
    ("postgres", "SELECT * FROM gold.x WHERE c LIKE '%UA%'"),
    ("postgres", "SELECT pg_size_pretty(pg_total_relation_size('gold.x'))"),
    ("postgres", "SELECT $$a;b$$"),
]

REFUSED: list[tuple[Dialect, str, str]] = [
    ("clickhouse", "SELECT * FROM FILE('/etc/hostname')", "Table function FILE()"),
    ("clickhouse", "SELECT * FROM a JOIN (SELECT * FROM `url`('http://x', CSV)) b ON 1", "url()"),
    ("clickhouse", "SELECT * FROM system.one ARRAY JOIN file('/x') AS y", "file()"),
    ("clickhouse", "SELECT * FROM merge('silver', '.*')", "merge()"),
    ("clickhouse", "DESCRIBE TABLE file('/etc/hostname')", "table name"),
    ("clickhouse", "SHOW CREATE TABLE silver.t FORMAT CSV", "names only"),
    ("clickhouse", "EXPLAIN SELECT * FROM s3('http://x/b/k')", "s3()"),
    ("clickhouse", "EXPLAIN SELECT ';'; DROP TABLE t", "one statement"),
    ("clickhouse", "SHOW TABLES; DROP TABLE t", "one statement"),
    ("clickhouse", "INSERT INTO FUNCTION file('/tmp/x') SELECT 1", "Only SELECT"),
    ("clickhouse", "SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
    ("clickhouse", "SELECT 1 /*", "Cannot read"),
    ("clickhouse", ";", "Give a SELECT"),
    ("postgres", "EXPLAIN (ANALYZE) DELETE FROM gold.x", "Only SELECT"),
    ("postgres", "/* c */ EXPLAIN ANALYZE VERBOSE UPDATE gold.x SET a = 1", "Only SELECT"),
    ("postgres", "SELECT * FROM (WITH d AS (UPDATE gold.x SET a = 1 RETURNING 1) SELECT 1) q", ""),
    ("postgres", "SELECT pg_catalog.pg_read_file('/etc/hostname')", "pg_read_file()"),
    ("postgres", "SELECT * FROM ROWS FROM (pg_read_file('/x'))", "pg_read_file()"),
    ("postgres", "SELECT lo_import('/etc/passwd')", "lo_import()"),
    ("postgres", "SELECT nextval('s')", "nextval()"),
    ("postgres", "SELECT 1 /* ; */ ; DELETE FROM gold.x", "one statement"),
    ("postgres", "SHOW search_path; DELETE FROM gold.x", "one statement"),
    ("postgres", "MERGE INTO gold.x USING gold.y ON true WHEN MATCHED THEN DELETE", "Only SELECT"),
    ("postgres", "SHOW ALL", "SHOW ALL"),
    ("postgres", "SHOW /* c */ restore_command", "restore_command"),
    ("postgres", "SELECT current_setting('archive_command')", "archive_command"),
    ("postgres", "SELECT current_setting(name) FROM gold.x", "literal"),
    ("postgres", "SELECT * FROM pg_catalog.pg_settings", "pg_settings"),
    ("postgres", "", "Give a SELECT"),
    ("postgres", "-- only a comment", "Give a SELECT"),
    # Found by review: names spelled with U& escapes, and SQL run from a string.
    ("postgres", "SELECT U&\"current\\005fsetting\"('archive_command')", "U&"),
    ("postgres", 'SHOW U&"archive\\005fcommand"', "U&"),
    ("postgres", 'SELECT u&"pg\\005fsleep"(2)', "U&"),
    ("postgres", "SELECT * FROM ts_stat('SELECT to_tsvector(setting) FROM pg_settings')", "ts_"),
    ("postgres", "SELECT table_to_xml('pg_settings', true, false, '')", "table_to_xml"),
    ("postgres", "SELECT schema_to_xml('pg_catalog', true, false, '')", "schema_to_xml"),
    ("postgres", "SELECT database_to_xml(true, false, '')", "database_to_xml"),
]


@pytest.mark.parametrize(("dialect", "statement"), READS)
def test_reads_pass_without_sqlglot_warnings(
    dialect: Dialect, statement: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="sqlglot"):
        sent = check_statement(statement, dialect)
    assert sent and not sent.endswith(";")
    assert "Falling back" not in caplog.text


@pytest.mark.parametrize(("dialect", "statement", "message"), REFUSED)
def test_refused_with_a_reason(dialect: Dialect, statement: str, message: str) -> None:
    with pytest.raises(ReadOnlyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_statement(statement, dialect)


@pytest.mark.parametrize(
    ("statement", "target"),
    [
        ("SELECT * FROM silver.flights", "silver"),
        ('select * from "gold".carrier_monthly_performance', "gold"),
        ("WITH f AS (SELECT * FROM silver.flights) SELECT count() FROM f", "silver"),
        ("SHOW TABLES FROM silver", "silver"),
        ("DESCRIBE TABLE silver.airlines", "silver"),
        ("EXPLAIN ANALYZE SELECT * FROM gold.x", "gold"),
        ("-- a comment\nTABLE gold.x;", "gold"),
        ("OPTIMIZE TABLE silver.flights FINAL", "silver"),  # the gate refuses it next
        ("SELECT 1", "gold"),
        ("SELECT current_user", "gold"),
        ("SELECT 'silver.flights'", "gold"),
    ],
)
def test_the_target_is_the_schema_the_statement_names(statement: str, target: str) -> None:
    assert detect_target(statement) == target


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("SELECT * FROM silver.flights JOIN gold.x ON true", "both silver and gold"),
        ("SHOW TABLES", "--target"),
        ("SELECT * FROM information_schema.tables", "--target"),
        ("SELECT * FROM numbers(3)", "--target"),
        ("OPTIMIZE TABLE flights", "Only SELECT"),
        ("", "Give a SELECT"),
        ("/* nothing */", "Give a SELECT"),
        ("SELECT 1; SELECT 2", "one statement"),
    ],
)
def test_no_target_without_one_store_named(
    statement: str, message: str, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.DEBUG, logger="sqlglot"),
        pytest.raises(ReadOnlyError, match=message),
    ):
        detect_target(statement)
    assert "Falling back" not in caplog.text
