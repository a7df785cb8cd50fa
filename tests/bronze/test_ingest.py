from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from onering_assets.bronze.ingest import month_of_rows, outcomes, split, stamp
from onering_assets.catalog import load_catalog
from onering_assets.checks import names
from onering_assets.checks.names import MALFORMED_LINES

FLIGHTS = load_catalog().table("bronze", "flights")
AIRLINES = load_catalog().table("bronze", "airlines")


def landed_flights(rows: list[dict[str, str | None]]) -> pa.Table:
    columns = [c.name for c in FLIGHTS.columns]
    return pa.table({c: pa.array([r.get(c, "1") for r in rows], pa.string()) for c in columns})


def test_stamp_adds_ingestion_columns() -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    table = stamp(pa.table({"a": ["x", "y"]}), batch_id="b1", source="s", ingested_at=when)
    assert table.column_names == ["a", "_batch_id", "_ingested_at", "_source", "_row"]
    assert table["_row"].to_pylist() == [1, 2]
    assert table["_batch_id"].to_pylist() == ["b1", "b1"]
    assert table["_ingested_at"].to_pylist()[0] == when


@pytest.mark.parametrize(
    ("year", "month", "expected"),
    [
        ("2013", "1", "2013-01"),
        (" 2013", "12 ", "2013-12"),
        (None, "1", None),
        ("2013", None, None),
    ],
)
def test_month_of_rows(year: str | None, month: str | None, expected: str | None) -> None:
    table = pa.table(
        {"year": pa.array([year], pa.string()), "month": pa.array([month], pa.string())}
    )
    assert month_of_rows(table).to_pylist() == [expected]


def test_split_assigns_months_and_keeps_unassignable_rows() -> None:
    data = landed_flights(
        [
            {"year": "2013", "month": "1"},
            {"year": "2013", "month": "2"},
            {"year": "2013", "month": "x"},
            {"year": None, "month": "3"},
        ]
    )
    landed = split(data, FLIGHTS, ["2013-01", "2013-02"])  # type: ignore[arg-type]
    assert {k: t.num_rows for k, t in landed.by_partition.items()} == {"2013-01": 1, "2013-02": 1}
    assert landed.unassigned.num_rows == 2
    assert landed.by_partition["2013-01"]["_partition"].to_pylist() == ["2013-01"]


def test_outcomes_flag_missing_columns_empty_partitions_and_unassigned_rows() -> None:
    data = landed_flights([{"year": "2013", "month": "1"}, {"year": "20x3", "month": "1"}])
    landed = split(data.drop_columns(["dep_delay"]), FLIGHTS, ["2013-01", "2013-02"])  # type: ignore[arg-type]
    result = {o.name: o for o in outcomes(FLIGHTS, landed)}  # type: ignore[arg-type]
    assert not result[names.REQUIRED_COLUMNS].passed
    assert "dep_delay" in result[names.REQUIRED_COLUMNS].summary
    assert not result[names.NOT_EMPTY].passed and result[names.NOT_EMPTY].sample == ["2013-02"]
    assert result[names.UNASSIGNED_ROWS].failing == 1


def test_whole_tables_are_one_partition() -> None:
    data = pa.table({"carrier": ["AA"], "name": ["American"]})
    landed = split(data, AIRLINES, ["2013-01"])  # type: ignore[arg-type]
    assert list(landed.by_partition) == [""]
    assert all(o.passed for o in outcomes(AIRLINES, landed))  # type: ignore[arg-type]


def test_row_is_the_physical_line_when_the_reader_gives_it() -> None:
    """Lines set aside leave gaps: _row still says where each row was in the file."""
    table = stamp(pa.table({"a": ["x", "y"]}), batch_id="b", source="s", lines=pa.array([2, 5]))
    assert table["_row"].to_pylist() == [2, 5]
    assert table["_row"].type == pa.uint64()


def test_malformed_lines_are_a_warning_outcome_with_their_line_numbers() -> None:
    malformed = pa.table(
        {"line": pa.array([7], pa.int64()), "reason": ["not UTF-8"], "raw": [b"\xe9\xff"]}
    )
    landed = split(landed_flights([{"year": "2013", "month": "1"}]), FLIGHTS, ["2013-01"])  # type: ignore[arg-type]
    results = outcomes(FLIGHTS, replace(landed, malformed=malformed))  # type: ignore[arg-type]
    bad = next(o for o in results if o.name == MALFORMED_LINES)
    assert not bad.passed and bad.failing == 1
    assert bad.sample == [{"line": 7, "reason": "not UTF-8"}]
    assert all(o.name != MALFORMED_LINES for o in outcomes(FLIGHTS, landed))  # type: ignore[arg-type]


def test_months_split_from_batches_that_straddle_months_keep_file_order() -> None:
    """Whole one-month batches are taken as they are, mixed ones filtered: either way each
    month holds exactly its rows, in the order of the file, and bad months are unassigned."""
    months = ["1", "1", "2", "1", "13", "3", "3", None, "2", "12"] * 30
    data = pa.table(
        {
            "year": ["2013"] * len(months),
            "month": months,
            "flight": [str(i) for i in range(len(months))],
        }
    )
    batched = pa.Table.from_batches(data.to_batches(max_chunksize=7))  # batches mix months
    homogeneous = pa.Table.from_batches(
        [data.slice(i, 1).to_batches()[0] for i in range(len(months))]  # one row each
    )
    table = FLIGHTS
    for source in (batched, homogeneous):
        wanted = ["2013-02", "2013-01"]
        landed = split(stamp(source, batch_id="b", source="s"), table, wanted)  # type: ignore[arg-type]
        assert list(landed.by_partition) == ["2013-02", "2013-01"]
        for key, month in (("2013-01", "1"), ("2013-02", "2")):
            expected = [str(i) for i, m in enumerate(months) if m == month]
            assert landed.by_partition[key]["flight"].to_pylist() == expected
            assert set(landed.by_partition[key]["_partition"].to_pylist()) == {key}
        assert landed.unassigned["month"].to_pylist() == [m for m in months if m in ("13", None)]
