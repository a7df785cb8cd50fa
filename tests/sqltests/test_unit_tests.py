"""SQL unit tests (``<table>.test.yml``): every declared table has them, and they pass.

Each declared test runs here as its own pytest case, through the code a build runs (Silver
staging on a scratch chDB; a Gold mart computed there and loaded into a temporary table in
a real embedded Postgres, rolled back); a wrong expectation fails with the differing rows
on both engines. The command itself: tests/sqltests/test_cli.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest

from onering_assets.catalog import load_catalog
from onering_assets.sqltests import spec
from onering_assets.sqltests.run import run_tests, scratch_clickhouse
from tests.conftest import scratch_postgres

CATALOG = load_catalog()
TABLES = [*CATALOG.silver, *CATALOG.gold]
TESTS = [t for table in TABLES for t in spec.load_tests(CATALOG, table)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with scratch_clickhouse(tmp_path_factory.mktemp("sqltests")) as client:
        yield client


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    with scratch_postgres("onering-sqltests-") as conn:
        yield conn


def test_every_silver_and_gold_table_has_unit_tests() -> None:
    tested = {t.key for t in TESTS}
    assert tested == {f"{t.layer}/{t.name}" for t in TABLES}
    silver = [t for t in TESTS if t.table.layer == "silver"]
    assert all(t.rejects is not None for t in silver if "reject" in t.name)
    reasons = {r.get("_reject_reason") for t in silver for r in t.rejects or []}
    assert {"duplicate key", "outside partition", "invalid date parts"} <= reasons
    # Every reason each table's SQL can give; the range check (one code path) on one column.
    for table in CATALOG.silver:
        tested = {
            r.get("_reject_reason") for t in silver if t.table is table for r in t.rejects or []
        }
        assert declared_reasons(table) <= tested, f"silver/{table.name}: untested reasons"
        ranged = any(str(r).startswith("out of range: ") for r in tested)
        assert ranged or not table.ranges, f"silver/{table.name}: no value outside a range"


def declared_reasons(table) -> set[str]:
    """The reasons in the SQL's ``multiIf(…) AS _reject_reason``."""
    sql = table.declared_sql
    block = sql[sql.rindex("multiIf(", 0, sql.index("AS _reject_reason")) :]
    block = block[: block.index("AS _reject_reason")]
    return set(re.findall(r",\s*'([^']+)'\s*,", block))


@pytest.mark.parametrize("test", TESTS, ids=[t.title for t in TESTS])
def test_declared_unit_test_passes(test: spec.UnitTest, client, pg) -> None:
    (outcome,) = run_tests([test], CATALOG, client, pg)
    assert outcome.passed, "\n".join(line for m in outcome.mismatches for line in m.lines())
    assert outcome.engines == (("chdb",) if test.table.layer == "silver" else ("chdb", "postgres"))


def test_a_wrong_expectation_fails_with_the_differing_rows(client, pg) -> None:
    (good,) = [t for t in TESTS if t.key == "gold/route_performance"]
    bad_rows = [dict(r) for r in good.rows]
    bad_rows[0]["avg_arr_delay"] = 11  # the mart computes 10
    bad = spec.UnitTest(good.table, good.name, good.given, bad_rows, None, good.path)
    (outcome,) = run_tests([bad], CATALOG, client, pg)
    assert not outcome.passed
    text = "\n".join(line for m in outcome.mismatches for line in m.lines())
    assert (
        "- expected, not produced: {origin: JFK, dest: LAX, flights: 2, avg_arr_delay: 11" in text
    )
    assert (
        "+ produced, not expected: {origin: JFK, dest: LAX, flights: 2, avg_arr_delay: 10" in text
    )
    assert [m.output for m in outcome.mismatches] == ["rows (chDB)", "rows (Postgres)"]


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        (10**12, 10**12 + 1, False),  # integers exactly, however large
        (2**53 + 1, 2**53, False),
        (0.1 + 0.2, 0.3, True),  # other numbers within 1e-9
        ("1", 1, False),  # a quoted number is text
        (1, True, False),
        (True, True, True),
        (None, float("nan"), True),
        (None, 0, False),
        ("2013-01-01", __import__("datetime").date(2013, 1, 1), True),
    ],
)
def test_values_compare_strictly(expected, actual, equal: bool) -> None:
    assert spec.same(expected, actual) is equal


def test_an_expected_column_the_sql_does_not_produce_is_a_mismatch_not_a_null() -> None:
    from onering_assets.sqltests.run import compare

    mismatch = compare("rows", [{"avg_arr_delay": None}], [{"other": 1}], {"other"})
    assert mismatch is not None and mismatch.absent == ("avg_arr_delay",)
    assert mismatch.lines() == ["  rows: no column avg_arr_delay is produced"]


def test_running_the_gold_tests_leaves_nothing_in_postgres(client, pg) -> None:
    gold = [t for t in TESTS if t.table.layer == "gold"]
    assert all(o.passed for o in run_tests(gold, CATALOG, client, pg))
    kept = pg.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'gold' "
        "OR table_name IN ('databasechangelog', 'databasechangeloglock')"
    ).fetchone()
    schemas = pg.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'gold'").fetchone()
    assert kept == (0,) and schemas == (0,)  # changesets and stage rolled back
