"""The data diff (onering_assets/change/datadiff.py) on real chDB and Postgres, planted changes.

The same planted change on both engines: from 1,000 published rows, 30 keys removed, 20
added, 70 rows with a changed number, 40 more with a value made NULL, and every float
nudged by far less than the tolerance (a re-run summing in another order): the diff counts
exactly those, per column too, with the statistics of both sides. The data_diff check
passes within its declared limit and fails beyond it.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from onering_assets.change.datadiff import DataDiff, diff_query, moved_outcome, parse_row
from onering_assets.sqltests.run import scratch_clickhouse
from tests.conftest import scratch_postgres

COLUMNS = [("k", "Int64"), ("amount", "Float64"), ("label", "Nullable(String)")]
PG_COLUMNS = [("k", "bigint"), ("amount", "double precision"), ("label", "text")]
OLD = [(k, k / 7, f"l{k % 5}") for k in range(1000)]


def new_rows() -> list[tuple]:
    rows = []
    for k, amount, label in OLD:
        if k < 30:
            continue  # removed
        if 100 <= k < 170:
            amount += 1.5  # changed number
        elif 200 <= k < 240:
            label = None  # changed text: now NULL
        else:
            amount *= 1 + 1e-13  # float noise: no change
        rows.append((k, amount, label))
    rows += [(k, 0.25, "new") for k in range(5000, 5020)]  # added
    return rows


def expect(diff: DataDiff, fresh: int = 0) -> None:
    assert (diff.old_rows, diff.new_rows) == (1000, 990)
    assert (diff.added, diff.removed, diff.changed, diff.fresh) == (20, 30, 110, fresh)
    assert diff.moved_pct == (16.0 if not fresh else 14.0)
    columns = {c.name: c for c in diff.columns}
    assert (columns["k"].changed, columns["amount"].changed, columns["label"].changed) == (
        0,
        70,
        40,
    )
    assert (columns["label"].old["nulls"], columns["label"].new["nulls"]) == (0, 40)
    old_mean = sum(r[1] for r in OLD) / 1000
    new = new_rows()
    assert columns["amount"].old["mean"] == pytest.approx(old_mean, abs=1e-6)
    assert columns["amount"].new["mean"] == pytest.approx(sum(r[1] for r in new) / 990, abs=1e-6)
    assert columns["amount"].new["min"] == pytest.approx(min(r[1] for r in new))
    assert columns["label"].old["mean"] is None  # text: nulls only


@pytest.fixture(scope="module")
def chdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with scratch_clickhouse(tmp_path_factory.mktemp("datadiff")) as client:
        yield client


@pytest.fixture(scope="module")
def pg() -> Iterator[psycopg.Connection]:
    with scratch_postgres("onering-datadiff-") as conn:
        yield conn


def test_clickhouse_counts_the_planted_change_exactly(chdb) -> None:
    for name, rows in (("old", OLD), ("new", new_rows())):
        chdb.command(f"CREATE TABLE {name} (k Int64, amount Float64, label Nullable(String)) "
                     "ENGINE = MergeTree ORDER BY k")  # fmt: skip
        chdb.insert(name, [list(r) for r in rows], column_names=["k", "amount", "label"])
    row = chdb.query(diff_query("new", "old", ("k",), COLUMNS, "clickhouse")).result_rows[0]
    expect(parse_row(row, COLUMNS))
    # By thousands of k, the 20 added keys (5000…) are a partition never published: they
    # replace nothing, so they are not moved.
    query = diff_query("new", "old", ("k",), COLUMNS, "clickhouse", partition="intDiv(k, 1000)")
    fresh = parse_row(chdb.query(query).result_rows[0], COLUMNS)
    assert (fresh.added, fresh.fresh, fresh.moved, fresh.moved_pct) == (20, 20, 140, 14.0)


def test_postgres_counts_the_planted_change_exactly(pg) -> None:
    for name, rows in (("old", OLD), ("new", new_rows())):
        pg.execute(f"CREATE TEMP TABLE {name} (k bigint, amount double precision, label text)")
        with pg.cursor().copy(f"COPY {name} (k, amount, label) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    query = diff_query("new", "old", ("k",), PG_COLUMNS, "postgres", partition="k / 1000")
    row = pg.execute(query).fetchone()  # type: ignore[arg-type]
    assert row is not None
    expect(parse_row(row, PG_COLUMNS), fresh=20)


def test_the_data_diff_check_holds_within_its_limit_and_fails_beyond() -> None:
    diff = DataDiff(1000, 990, 20, 30, 110, ())
    assert moved_outcome(16, diff).passed
    failed = moved_outcome(5, diff)
    assert not failed.passed and failed.failing == 160
    assert "more than the declared 5 %" in failed.summary
    assert moved_outcome(5, DataDiff(0, 990, 990, 0, 0, ())).passed  # first publish
    assert moved_outcome(5, None).passed  # checks alone: nothing staged
